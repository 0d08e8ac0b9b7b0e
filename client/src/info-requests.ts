/**
 * `service_info` requests over the client socket (docs/protocol.md 5.2), matched to their answers by
 * `ref`, sent again after a reconnect (they are idempotent), and bounded in time.
 */
import type { ClientToHubMessage, ServiceInfo, ServiceInfoRequestMsg } from '@utils-hub/protocol';
import { HubError } from '@utils-hub/protocol/errors';

interface InfoRequest {
  message: ServiceInfoRequestMsg;
  resolve(info: ServiceInfo): void;
  reject(err: HubError): void;
  timer: ReturnType<typeof setTimeout>;
}

/** The service_info requests of one client that await their answer. */
export class InfoRequests {
  readonly #open = new Map<string, InfoRequest>();
  readonly #send: (message: ClientToHubMessage) => boolean;
  readonly #timeoutMs: number;

  /** `send` writes a message if the socket is open; `timeoutMs` bounds each request. */
  constructor(send: (message: ClientToHubMessage) => boolean, timeoutMs: number) {
    this.#send = send;
    this.#timeoutMs = timeoutMs;
  }

  /** Asks for service `serviceId` under `ref`; rejects with HubError `timeout` past the bound. */
  ask(ref: string, serviceId: number): Promise<ServiceInfo> {
    return new Promise<ServiceInfo>((resolve, reject) => {
      const req: InfoRequest = {
        message: { type: 'service_info', ref, service_id: serviceId },
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#open.delete(ref);
          reject(new HubError('timeout', `the hub did not describe service ${serviceId} within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs),
      };
      this.#open.set(ref, req);
      this.#send(req.message);
    });
  }

  /** True when `ref` names a request of this table. */
  has(ref: string): boolean {
    return this.#open.has(ref);
  }

  /** Settles the request named by a `service_info` or `rejected` message; false when it names none. */
  answer(m: Record<string, unknown>): boolean {
    const req = typeof m.ref === 'string' ? this.#open.get(m.ref) : undefined;
    if (!req) return false;
    this.#open.delete(m.ref as string);
    clearTimeout(req.timer);
    if (m.type === 'service_info') req.resolve(m.service as ServiceInfo);
    else req.reject(HubError.from(m.error));
    return true;
  }

  /** Sends every open request again (after a reconnect). */
  resend(): void {
    for (const req of this.#open.values()) this.#send(req.message);
  }

  /** Rejects every open request with `err`. */
  failAll(err: HubError): void {
    for (const req of this.#open.values()) {
      clearTimeout(req.timer);
      req.reject(err);
    }
    this.#open.clear();
  }
}
