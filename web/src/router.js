// Views are addressed after "#" (the gateway serves one page at "/"): #/jobs, #/jobs/ID?t=12.5, #/search?q=…
import { useEffect, useState } from "preact/hooks";

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/jobs";
  const [path, query = ""] = raw.split("?");
  return { path, parts: path.split("/").filter(Boolean), query: Object.fromEntries(new URLSearchParams(query)) };
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const update = () => setRoute(parseHash());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

export function go(path) {
  location.hash = path;
}

export function href(path, query) {
  const q = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString() : "";
  return `#${path}${q ? `?${q}` : ""}`;
}
