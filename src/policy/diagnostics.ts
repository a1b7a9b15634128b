// Load errors with exact positions: every error a user sees points at file:line:col of what they wrote.

export interface SourcePos {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export interface Diagnostic extends SourcePos {
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** Thrown when a policy set cannot load; carries every error found, not just the first. */
export class PolicyLoadError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
  }
}

export class Diagnostics {
  readonly list: Diagnostic[] = [];
  error(pos: SourcePos, message: string): void {
    this.list.push({ file: pos.file, line: pos.line, col: pos.col, message });
  }
  get hasErrors(): boolean {
    return this.list.length > 0;
  }
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** " (did you mean \"x\"?)" for a near miss among the allowed names, else "". */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best && bestD <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : '';
}
