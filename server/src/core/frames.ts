/**
 * The hub's outgoing text frames, typed by the contract: every message the hub sends to a client
 * is a `HubToClientMessage` and every message to a worker a `HubToWorkerMessage`, the Static types
 * of the schemas that check incoming frames (protocol/src/schemas.ts, docs/protocol.md section 5),
 * so that a frame that strays from the contract does not compile.
 */
import { encodeMessage, type EncodedMessage } from '@utils-hub/protocol';
import type { AcceptedMsg, ClientProgressMsg, HubToClientMessage, HubToWorkerMessage, SnapshotMsg, StartedMsg } from '@utils-hub/protocol';

/** A message of the hub to a client as its text frame. */
export function clientFrame(message: HubToClientMessage): string {
  return JSON.stringify(message);
}

/** A task's state now as its `snapshot` frame (`subscribe`, a repeated idempotency key, the event stream). */
export function snapshotFrame(taskId: SnapshotMsg['task_id'], s: Omit<SnapshotMsg, 'type' | 'task_id'>): string {
  return clientFrame({ type: 'snapshot', task_id: taskId, seq: s.seq, status: s.status, progress: s.progress, message: s.message, position: s.position });
}

/** A message of the hub to a worker as its text frame. */
export function workerFrame(message: HubToWorkerMessage): string {
  return JSON.stringify(message);
}

/** A message of the hub to a worker with its attachments (a task's media) as its frames. */
export function encodeWorkerMessage(message: HubToWorkerMessage): EncodedMessage {
  return encodeMessage(message);
}

/*
 * The frames sent for every task, written out rather than through JSON.stringify of a new object;
 * their arguments are typed by the fields of their message. Task ids are the hub's own (nanoid:
 * letters, digits, `_` and `-`), which JSON needs not escape; a client's `ref` is serialised.
 */

/** `accepted`, with the client's `ref` when it gave one, and `"duplicate": true` for a repeated idempotency key. */
export function acceptedFrame(taskId: AcceptedMsg['task_id'], position: AcceptedMsg['position'], ref?: AcceptedMsg['ref'], duplicate = false): string {
  const tail = (ref === undefined ? '' : `,"ref":${JSON.stringify(ref)}`) + (duplicate ? ',"duplicate":true' : '');
  return `{"type":"accepted","task_id":"${taskId}","position":${position}${tail}}`;
}

/** `started`. */
export function startedFrame(taskId: StartedMsg['task_id'], seq: StartedMsg['seq'], attempt: StartedMsg['attempt']): string {
  return `{"type":"started","task_id":"${taskId}","seq":${seq},"attempt":${attempt}}`;
}

/**
 * Adds `"seq": n` to a worker's `progress` or `result` as received (checked against its schema
 * by then), which makes it the client's message of that type, so that the hub forwards it without
 * parsing and serialising it again. The member goes last: where the worker sent a `seq` of its
 * own, JSON readers keep the last duplicate, which is the hub's.
 */
export function withSeq(raw: string, seq: ClientProgressMsg['seq']): string {
  let end = raw.length - 1;
  while (end > 0 && raw.charCodeAt(end) !== 0x7d /* } */) end--;
  return `${raw.slice(0, end)},"seq":${seq}}`;
}
