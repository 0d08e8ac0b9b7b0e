export async function runStart(_argv: string[]): Promise<void> {
  throw new Error('start: being written');
}
