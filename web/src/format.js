// Small formatting helpers shared by the views.

export function clock(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

export function preciseClock(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  return `${clock(seconds)}.${String(Math.floor((seconds % 1) * 10))}`;
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function percent(x) {
  return x == null ? "–" : `${Math.round(x * 100)}%`;
}

// Speaker colours: distinct hues with enough contrast against white text labels and the page.
const PALETTE = ["#1f6fb2", "#b3451b", "#2e7d32", "#7b3fa0", "#a3710b", "#0e7c86", "#b0306a", "#4a5a6a"];

export function speakerColor(index) {
  return PALETTE[index % PALETTE.length];
}
