/** robust-server: the program that runs any set of roles of a RobustMQ node. */
export { loadConfig, configKeys, renderConfigReference, ConfigSchema, type Config, type Role } from './config.js';
export { RobustNode, StartupError } from './node.js';
