// Where a command writes: the console by default, a buffer in tests (so tests assert on exact output).

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const consoleIo: CliIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

/** Collects output in memory. */
export function bufferIo(): CliIo & { readonly stdout: string[]; readonly stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => stdout.push(...t.split('\n')),
    err: (t) => stderr.push(...t.split('\n')),
  };
}
