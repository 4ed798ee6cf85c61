import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { robustMQClusterCrd } from './api/crd.js';

/**
 * Renders the CRD into crds/ and into the chart (`npm run crds -w operator`); a test fails when
 * either file is stale. The chart copy sits behind `crds.install` and is kept on uninstall.
 */
const HEADER = '# Generated from operator/src/api/crd.ts by `npm run crds -w operator`; do not edit.\n';

export function crdYaml(): string {
  return HEADER + stringify(robustMQClusterCrd(), { lineWidth: 0 });
}

export function chartCrdTemplate(): string {
  const crd = robustMQClusterCrd() as { metadata: Record<string, unknown> };
  const body = stringify(crd, { lineWidth: 0 }).replace(/^metadata:\n/m, 'metadata:\n  annotations:\n    helm.sh/resource-policy: keep\n');
  return `${HEADER}{{- if .Values.crds.install }}\n${body}{{- end }}\n`;
}

export const CRD_PATH = new URL('../../../crds/robustmq.io_robustmqclusters.yaml', import.meta.url);
export const CHART_CRD_PATH = new URL('../../../charts/robustmq-operator/templates/crds.yaml', import.meta.url);

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  writeFileSync(CRD_PATH, crdYaml());
  writeFileSync(CHART_CRD_PATH, chartCrdTemplate());
  process.stdout.write(`wrote ${CRD_PATH.pathname} and ${CHART_CRD_PATH.pathname}\n`);
}
