/** The RobustMQ operator: CRD, manifest builders, membership planner, reconciler and process wiring. */
export * from './api/types.js';
export { robustMQClusterCrd } from './api/crd.js';
export { withDefaults, validateSpec, parseQuantity } from './api/defaults.js';
export { desiredObjects, names, mergePatch, type KubeObject, type DesiredInputs } from './manifests.js';
export { planMembership, metaStatefulSetReplicas, safeToRemove, type Action, type PlanInput, type RaftView } from './membership.js';
export { HttpMetaAdmin, raftView, type MetaAdmin, type MetaStatusResponse } from './meta-admin.js';
export { Controller } from './controller.js';
export { Operator, OPERATOR_VERSION } from './operator.js';
export { LeaderElector } from './leader-election.js';
export { Kube, FIELD_MANAGER, microTime } from './kube.js';
