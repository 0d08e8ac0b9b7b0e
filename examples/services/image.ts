/**
 * `image_transform_service`: rotates, resizes, greys or blurs a picture with sharp, reporting
 * progress per step, and answers the new picture (as an attachment) in the format it came in.
 */
import sharp from 'sharp';
import { defineService, type Service, ServiceError } from '@utils-hub/worker-client';

const FORMATS = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/webp': 'webp' } as const;
type Mime = keyof typeof FORMATS;
const EXTENSIONS: Record<Mime, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp' };

/** `cat.png` → `cat-rotate.png`. */
function outputName(name: string | undefined, operation: string, mime: Mime): string {
  const base = (name ?? 'image').replace(/\.[^.]*$/, '') || 'image';
  return `${base}-${operation}.${EXTENSIONS[mime]}`;
}

/** A new `image_transform_service` service, not connected yet. */
export function imageService(): Service {
  return defineService({
    name: 'image_transform_service',
    description: 'Rotates, resizes, greys or blurs a picture',
    input: [
      {
        argument_name: 'image',
        argument_description: 'The picture (PNG, JPEG or WebP)',
        type: 'image',
        mime: ['image/png', 'image/jpeg', 'image/webp'],
        prompt: 'Send me a picture',
      },
      {
        argument_name: 'operation',
        argument_description: 'What to do with it',
        type: 'str',
        choices: ['rotate', 'resize', 'grayscale', 'blur'],
        default: 'rotate',
        prompt: 'What should I do with it?',
      },
      { argument_name: 'angle', argument_description: 'Degrees, clockwise (rotate)', type: 'int', default: 90 },
      {
        argument_name: 'width',
        argument_description: 'New width in pixels, height kept in proportion (resize)',
        type: 'int',
        required: false,
        min: 1,
        max: 8192,
      },
      { argument_name: 'sigma', argument_description: 'Strength of the blur (blur)', type: 'float', default: 2, min: 0.3, max: 100 },
    ],
    output: [{ argument_name: 'image', argument_description: 'The new picture, in the format given', type: 'image' }],
    handler: async ({ image, operation, angle, width, sigma }, ctx) => {
      if (!('data' in image)) throw new ServiceError('unsupported_input', 'send the picture itself: this service does not fetch URLs');
      const mime = image.mime.toLowerCase() as Mime;
      if (!(mime in FORMATS)) throw new ServiceError('unsupported_format', `cannot read ${image.mime}`);
      if (operation === 'resize' && width === undefined) throw new ServiceError('missing_width', 'resize needs a width');

      await ctx.progress(0.1, 'reading');
      let pipeline = sharp(image.data, { failOn: 'error' });
      try {
        await pipeline.metadata();
      } catch (err) {
        throw new ServiceError('bad_image', `the picture cannot be read: ${(err as Error).message}`);
      }
      ctx.signal.throwIfAborted();

      await ctx.progress(0.4, operation);
      if (operation === 'rotate') pipeline = pipeline.rotate(((angle % 360) + 360) % 360, { background: { r: 0, g: 0, b: 0, alpha: 0 } });
      else if (operation === 'resize') pipeline = pipeline.resize({ width });
      else if (operation === 'grayscale') pipeline = pipeline.grayscale();
      else pipeline = pipeline.blur(sigma);

      await ctx.progress(0.7, 'encoding');
      const data = await pipeline.toFormat(FORMATS[mime]).toBuffer();
      ctx.signal.throwIfAborted();
      await ctx.progress(1, 'done');
      return { mime, name: outputName(image.name, operation, mime), data };
    },
  });
}
