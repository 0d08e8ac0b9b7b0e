/**
 * The rows of the webhook outbox (docs/delivery.md): made by the webhook follower of a task
 * (`started`, `progress`), by the hub at a task's end (`completed`, committed with the end row)
 * and by the start of a hub for the tasks a crash left unfinished (with their `interrupted` end).
 */
import type { TaskView, WebhookEvent } from '@utils-hub/protocol';
import { newTaskId } from './task-id.js';
import type { DeliveryRow } from '../store/webhook-deliveries.js';

/** A new delivery of `event` of a task to `url`, due at `now`, its body the task's view plus `event`. */
export function deliveryRow(taskId: string, url: string, event: WebhookEvent, view: TaskView, now: number): DeliveryRow {
  return {
    // In time order, like task ids: a new row lands on the last page of the primary key's index.
    id: `msg_${newTaskId(now)}`,
    task_id: taskId,
    url,
    event,
    body: JSON.stringify({ ...view, event }),
    status: 'pending',
    attempts: 0,
    next_at: now,
    last_status: null,
    last_error: null,
    created_at: now,
    updated_at: now,
  };
}

/**
 * The URL a task submitted with a webhook gives the hub for its `completed` delivery (`Hub.enqueue`'s
 * `webhook`: made at its end and committed with its end row), or null when it asked for none.
 */
export function completedWebhookUrl(spec: { url: string; events: ReadonlySet<WebhookEvent> } | null): string | null {
  return spec?.events.has('completed') ? spec.url : null;
}
