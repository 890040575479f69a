/**
 * Training progress: a live single line on a terminal (step, loss, tokens/s, ETA), or one JSON
 * object per line, plus the library's callback.
 *
 * @module
 */
import type { ProgressEvent, ProgressMode, ProgressSink } from "./config.js";

function duration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

/** The one-line form of an event. */
export function formatProgress(e: ProgressEvent): string {
  const width = String(e.steps).length;
  const head = `step ${String(e.step).padStart(width)}/${e.steps}`;
  if (e.kind === "eval") return `${head}  valid loss ${e.loss.toFixed(4)}`;
  if (e.kind === "checkpoint") return `${head}  checkpoint ${e.path ?? ""}`;
  return `${head}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  |g| ${e.gradNorm.toFixed(3)}  ${Math.round(e.tokensPerSecond)} tok/s  ETA ${duration(e.etaSeconds)}`;
}

/** Shows events per mode: "tty" rewrites one line (evaluations stay above it), "json" writes lines. */
export class ProgressReporter {
  private readonly mode: "tty" | "json" | "none";
  private lastDraw = 0;
  private drawn = false;

  /** `mode` "auto" is "tty" when `sink` is a terminal, else "json". */
  constructor(
    mode: ProgressMode,
    private readonly sink: ProgressSink,
    private readonly callback?: (e: ProgressEvent) => void,
    private readonly jsonInterval = 1,
  ) {
    this.mode = mode === "auto" ? (sink.isTTY ? "tty" : "json") : mode;
  }

  /** Reports an event. */
  report(e: ProgressEvent): void {
    this.callback?.(e);
    if (this.mode === "json") {
      if (e.kind !== "step" || e.step % this.jsonInterval === 0 || e.step === e.steps) this.sink.write(JSON.stringify(e) + "\n");
      return;
    }
    if (this.mode !== "tty") return;
    const now = Date.now();
    if (e.kind === "step") {
      if (now - this.lastDraw < 100 && e.step !== e.steps) return;
      this.lastDraw = now;
      this.sink.write(`\r\x1b[K${formatProgress(e)}`);
      this.drawn = true;
    } else if (e.kind === "done") {
      this.sink.write(`\r\x1b[K${formatProgress({ ...e, kind: "step" })}\n`);
      this.drawn = false;
    } else {
      this.sink.write(`${this.drawn ? "\r\x1b[K" : ""}${formatProgress(e)}\n`);
      this.drawn = false;
    }
  }
}
