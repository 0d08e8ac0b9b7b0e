/**
 * @utils-hub/worker-client: define a service, then connect it to a hub (`connect`) or let the hub
 * dial it (`listen`).
 *
 * ```ts
 * const service = defineService({ name: 'shout', description: 'Upper-cases a text',
 *   input: [{ argument_name: 'text', type: 'str' }],
 *   handler: ({ text }) => ({ text: text.toUpperCase() }) });
 * await service.connect('ws://127.0.0.1:8080/worker', { token: process.env.HUB_TOKEN });
 * ```
 */
export { defineService, Service, type ServiceDefinition } from './service.js';
export { ServiceError, TaskAbortedError } from './errors.js';
export {
  WORKER_DEFAULTS,
  type CloseOptions,
  type ConnectOptions,
  type ConnectionOptions,
  type ListenOptions,
} from './options.js';
export type { ListenAddress } from './listener.js';
export { backoffDelay } from '@utils-hub/protocol';
export { TypedEmitter, type EventMap } from './typed-emitter.js';
export type {
  AbortReason,
  ArgsOf,
  ArgumentSpec,
  ConnectedInfo,
  Handler,
  MediaFile,
  MediaLink,
  MediaValue,
  TaskContext,
  ValueOfArgument,
  ValueOfType,
  WorkerEvents,
} from './types.js';
export { HubError, type ErrorCode } from '@utils-hub/protocol';
