// Hash router: #/<section>/<param>?<query>. Each navigation renders a page
// into a fresh container; the previous page's cleanups (charts, timers) run
// first, and its late answers land in a detached container.

import type { Whoami } from "./api";

export interface PageContext {
  /** The page's container (empty at the start). */
  root: HTMLElement;
  /** Path segments after the section, URI-decoded. */
  params: string[];
  query: URLSearchParams;
  user: Whoami;
  /** False once the user navigated elsewhere. */
  alive(): boolean;
  onCleanup(fn: () => void): void;
  /** Updates the query in the address bar without rendering again. */
  setQuery(values: Record<string, string | null | undefined>): void;
}

export type Page = (ctx: PageContext) => Promise<void> | void;

export interface Route {
  section: string;
  page: Page;
  /** Needs at least this many path segments after the section (picks a detail page over a list). */
  minParams?: number;
}

export interface Location {
  section: string;
  params: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Location {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "");
  const parts = path.split("/").filter((p) => p.length > 0).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { section: parts[0] ?? "", params: parts.slice(1), query };
}

/** Builds "#/section/p1?k=v" with each segment encoded. */
export function href(section: string, params: string[] = [], query: Record<string, string | undefined> = {}): string {
  const path = [section, ...params].map(encodeURIComponent).join("/");
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, v);
  const qs = q.toString();
  return `#/${path}${qs ? `?${qs}` : ""}`;
}

export class Router {
  private generation = 0;
  private cleanups: Array<() => void> = [];

  constructor(
    private readonly outlet: HTMLElement,
    private readonly routes: Route[],
    private readonly fallback: string,
    private readonly getUser: () => Whoami,
    private readonly onNavigate: (loc: Location) => void,
    private readonly onError: (root: HTMLElement, e: unknown) => void,
  ) {}

  start(): void {
    window.addEventListener("hashchange", () => void this.render());
    void this.render();
  }

  reload(): void {
    void this.render();
  }

  private async render(): Promise<void> {
    const loc = parseHash(window.location.hash);
    const candidates = this.routes.filter((r) => r.section === loc.section);
    const route =
      candidates
        .filter((r) => loc.params.length >= (r.minParams ?? 0))
        .sort((a, b) => (b.minParams ?? 0) - (a.minParams ?? 0))[0] ?? null;
    if (!route) {
      window.location.replace(this.fallback);
      return;
    }
    for (const fn of this.cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // A failing cleanup must not block navigation.
      }
    }
    const gen = ++this.generation;
    const root = document.createElement("div");
    root.className = "page";
    root.dataset["page"] = loc.section;
    this.outlet.replaceChildren(root);
    this.onNavigate(loc);
    const ctx: PageContext = {
      root,
      params: loc.params,
      query: loc.query,
      user: this.getUser(),
      alive: () => gen === this.generation,
      onCleanup: (fn) => {
        if (gen === this.generation) this.cleanups.push(fn);
        else fn();
      },
      setQuery: (values) => {
        if (gen !== this.generation) return;
        const current = parseHash(window.location.hash);
        for (const [k, v] of Object.entries(values)) {
          if (v === null || v === undefined || v === "") current.query.delete(k);
          else current.query.set(k, v);
        }
        const qs = current.query.toString();
        const path = [current.section, ...current.params].map(encodeURIComponent).join("/");
        window.history.replaceState(null, "", `#/${path}${qs ? `?${qs}` : ""}`);
      },
    };
    try {
      await route.page(ctx);
    } catch (e) {
      if (ctx.alive()) this.onError(root, e);
    }
  }
}
