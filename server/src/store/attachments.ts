/**
 * Packing of a task's media bytes into one blob (the `tasks.attachments` column), raw, without
 * base64: a 32-bit big-endian count, then each length as 32-bit big-endian, then the bytes.
 */

/**
 * The packed blob as pieces (its header, then the buffers as they are): joined where it is
 * written, so that the hub's event loop does not copy a result's media to store it.
 */
export function attachmentPieces(buffers: readonly Uint8Array[]): Uint8Array[] {
  const header = Buffer.alloc(4 + 4 * buffers.length);
  header.writeUInt32BE(buffers.length, 0);
  for (let i = 0; i < buffers.length; i++) header.writeUInt32BE(buffers[i].byteLength, 4 + 4 * i);
  return [header, ...buffers];
}

/** Packs buffers into one. `unpackAttachments` reverses it. */
export function packAttachments(buffers: readonly Uint8Array[]): Buffer {
  return Buffer.concat(attachmentPieces(buffers));
}

/** Unpacks what `packAttachments` made. Throws on a malformed blob. */
export function unpackAttachments(buf: Uint8Array): Buffer[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 4) throw new Error('malformed attachments blob: too short');
  const count = b.readUInt32BE(0);
  let offset = 4 + 4 * count;
  if (offset > b.length) throw new Error('malformed attachments blob: truncated header');
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const len = b.readUInt32BE(4 + 4 * i);
    if (offset + len > b.length) throw new Error('malformed attachments blob: truncated data');
    out.push(b.subarray(offset, offset + len));
    offset += len;
  }
  if (offset !== b.length) throw new Error('malformed attachments blob: trailing bytes');
  return out;
}
