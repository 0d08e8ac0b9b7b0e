/**
 * @utils-hub/client: the SDK for bot authors. `HubClient` runs tasks on a utils-hub over its
 * client WebSocket; `conversation()` asks a person for a service's arguments in a chat.
 * Runs in Node (with the `ws` package) and in browsers (with their WebSocket).
 */
export { HubClient } from './hub-client.js';
export type { HubClientEvents } from './hub-client.js';
export type { RunOptions, SubmitOptions, TaskArgs } from './submit-options.js';
export { TaskHandle } from './task-handle.js';
export type { TaskAccepted, TaskHandleEvents, TaskProgress, TaskSnapshot, TaskState } from './task-handle.js';
export { HUB_CLIENT_DEFAULTS, hubEndpoints } from './options.js';
export type { FetchLike, HubClientOptions, ResolvedOptions } from './options.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export { backoffDelay } from '@utils-hub/protocol/core';
export { media, mediaFromBlob, fromBase64, toBase64 } from './media.js';
export type { Media, MediaData, MediaInput } from './media.js';
export { Conversation, conversation, conversationFromJSON } from './conversation.js';
export type { AnswerKind, AnswerResult, ConversationJSON, ConversationService, Question } from './conversation.js';
export { HubError } from '@utils-hub/protocol/errors';
export type { ErrorCode } from '@utils-hub/protocol/errors';
export type { Argument, ArgType, ServiceInfo, ServiceListEntry } from '@utils-hub/protocol';
