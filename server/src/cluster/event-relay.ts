/**
 * A task's events between hubs (docs/cluster.md "Events anywhere"): the hub running an attempt
 * publishes each event (its wire text frame, with `seq`, and its binary frames as they are) on
 * the core subject `<cluster>.ev.<task_id>`; a hub with subscribers of that task follows the
 * subject and passes each event on once, in `seq` order: a `seq` at or below the last one passed
 * is a duplicate and dropped (but for the task's end, which is never dropped), one past the next
 * expected is a gap, reported so that the hub can read the task's state instead.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Broker } from './broker.js';

/** One event as it travels: what a local subscriber's `deliver` takes. */
export interface RelayedEvent {
  seq: number;
  /** The wire text frame (JSON with `task_id` and `seq`). */
  text: string;
  binaries: readonly Uint8Array[] | null;
  /** True for the task's last event. */
  end: boolean;
}

/** Bytes before the text: seq (u32), end (u8), text length (u32), binary count (u16). */
const HEAD = 11;

/** Encodes an event: a fixed head, the lengths of its binary frames, the text, the binaries. */
export function encodeEvent(ev: RelayedEvent): Buffer {
  const text = Buffer.from(ev.text, 'utf8');
  const bins = ev.binaries ?? [];
  const head = Buffer.allocUnsafe(HEAD + 4 * bins.length);
  head.writeUInt32BE(ev.seq, 0);
  head.writeUInt8(ev.end ? 1 : 0, 4);
  head.writeUInt32BE(text.length, 5);
  head.writeUInt16BE(bins.length, 9);
  for (let i = 0; i < bins.length; i++) head.writeUInt32BE(bins[i].length, HEAD + 4 * i);
  return Buffer.concat([head, text, ...bins]);
}

/** Decodes `encodeEvent`'s bytes; throws on bytes it did not make. */
export function decodeEvent(data: Uint8Array): RelayedEvent {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < HEAD) throw new Error('event too short');
  const seq = buf.readUInt32BE(0);
  const end = buf.readUInt8(4) === 1;
  const textLen = buf.readUInt32BE(5);
  const n = buf.readUInt16BE(9);
  let at = HEAD + 4 * n;
  const lens: number[] = [];
  for (let i = 0; i < n; i++) lens.push(buf.readUInt32BE(HEAD + 4 * i));
  if (at + textLen + lens.reduce((a, b) => a + b, 0) !== buf.length) throw new Error('event lengths do not add up');
  const text = buf.toString('utf8', at, at + textLen);
  at += textLen;
  const binaries = lens.map((len) => {
    const b = buf.subarray(at, at + len);
    at += len;
    return b;
  });
  return { seq, text, binaries: n ? binaries : null, end };
}

/** What a follower does with the events it receives. */
export interface FollowHandlers {
  /** An event to pass on (each seq once, increasing). */
  event(ev: RelayedEvent): void;
  /** Events between `expected` and `got` - 1 were lost on the way. */
  gap?(expected: number, got: number): void;
}

/** A followed task; `stop()` ends the following (it ends by itself after the end event). */
export interface Following {
  /** Seq of the last event passed on. */
  readonly lastSeq: number;
  /** Attempt of the last `started` passed on (0 before any). */
  readonly lastAttempt: number;
  stop(): void;
}

/** What the followers of a task have seen, as `lastSeen` gathers it. */
export interface SeenState {
  seq: number;
  attempt: number;
}

const STARTED_ATTEMPT = /^\{"type":"started".*"attempt":(\d+)\}$/;

export class EventRelay {
  constructor(
    private readonly broker: Broker,
    private readonly subject: (taskId: string) => string,
  ) {}

  /** Publishes one event of `taskId` (at most once: core NATS). False when the broker is away. */
  publish(taskId: string, ev: RelayedEvent): boolean {
    if (!this.broker.up) return false;
    try {
      this.broker.nc.publish(this.subject(taskId), encodeEvent(ev));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Follows `taskId`'s events after seq `afterSeq` (those at or below it are dropped as
   * already seen). Resolves once NATS has the subscription, so an event published after that
   * reaches it.
   */
  async follow(taskId: string, afterSeq: number, handlers: FollowHandlers): Promise<Following> {
    let last = afterSeq;
    let attempt = 0;
    let sub: Subscription | null = null;
    // Answers `lastSeen`: a hub starting a new attempt of the task goes on from what we saw.
    const survey = this.broker.nc.subscribe(`${this.subject(taskId)}.seen`, {
      callback: (err, msg) => {
        if (!err) msg.respond(JSON.stringify({ seq: last, attempt } satisfies SeenState));
      },
    });
    const stop = () => {
      try {
        sub?.unsubscribe();
        survey.unsubscribe();
      } catch {
        // Closed with the connection.
      }
    };
    sub = this.broker.nc.subscribe(this.subject(taskId), {
      callback: (err, msg) => {
        if (err) return;
        let ev: RelayedEvent;
        try {
          ev = decodeEvent(msg.data);
        } catch {
          return;
        }
        // An end is passed even at or below the last seq: the following stops at the first end, so
        // it is never a second one here, and one that belongs to a newer attempt must not be lost.
        if (ev.seq <= last && !ev.end) return;
        // A new attempt's `started` after a takeover jumps by design (docs/cluster.md, "Seq across attempts").
        const started = STARTED_ATTEMPT.exec(ev.text);
        if (ev.seq > last + 1 && !started) handlers.gap?.(last + 1, ev.seq);
        last = Math.max(last, ev.seq);
        if (started) attempt = Number(started[1]);
        if (ev.end) stop();
        handlers.event(ev);
      },
    });
    await this.broker.nc.flush();
    return {
      get lastSeq() {
        return last;
      },
      get lastAttempt() {
        return attempt;
      },
      stop,
    };
  }

  /**
   * The highest seq and attempt that the followers of `taskId` on any hub have seen, gathered
   * for up to `maxWaitMs`: a hub that takes over a task (its holder died) numbers its events
   * after them, so that no follower drops them as duplicates. Zeros when nobody follows.
   */
  async lastSeen(taskId: string, maxWaitMs = 200): Promise<SeenState> {
    const out: SeenState = { seq: 0, attempt: 0 };
    try {
      const replies = await this.broker.nc.requestMany(`${this.subject(taskId)}.seen`, '', { strategy: 'timer', maxWait: maxWaitMs });
      for await (const m of replies) {
        try {
          const s = m.json<SeenState>();
          if (Number.isInteger(s.seq) && s.seq > out.seq) out.seq = s.seq;
          if (Number.isInteger(s.attempt) && s.attempt > out.attempt) out.attempt = s.attempt;
        } catch {
          // Not an answer of ours.
        }
      }
    } catch {
      // No follower (no responders) or the broker away: nobody saw anything we could collide with.
    }
    return out;
  }
}
