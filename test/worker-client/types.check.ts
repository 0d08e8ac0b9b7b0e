import { defineService, type ArgsOf } from '@utils-hub/worker-client';

type Eq<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const ok = <T extends true>(_?: T) => undefined;

const input = [
  { argument_name: 'image', type: 'image', mime: ['image/png'] },
  { argument_name: 'operation', type: 'str', choices: ['rotate', 'resize'], default: 'rotate' },
  { argument_name: 'angle', type: 'int', default: 90 },
  { argument_name: 'width', type: 'int', required: false },
  { argument_name: 'flag', type: 'bool' },
  { argument_name: 'value', type: 'json' },
] as const;
type A = ArgsOf<typeof input>;
ok<Eq<A['operation'], 'rotate' | 'resize'>>();
ok<Eq<A['angle'], number>>();
ok<Eq<A['flag'], boolean>>();
ok<Eq<A['value'], unknown>>();
const a = {} as A;
const w: number | undefined = a.width;
// @ts-expect-error width is optional
const w2: number = a.width;

defineService({
  name: 'x',
  description: '',
  input: [
    { argument_name: 'text', type: 'str', min: 1 },
    { argument_name: 'times', type: 'int', default: 1 },
    { argument_name: 'opt', type: 'float', required: false },
  ],
  handler: async ({ text, times, opt }, ctx) => {
    const t: string = text;
    const n: number = times;
    // @ts-expect-error opt may be undefined
    const o: number = opt;
    await ctx.progress(0.5, 'x');
    ctx.signal.throwIfAborted();
    return { t, n, o, w, w2 };
  },
});
