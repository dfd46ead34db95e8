// Small DOM helpers: element construction, tables, badges, status lines.

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Attrs {
  class?: string;
  testid?: string;
  title?: string;
  href?: string;
  type?: string;
  value?: string;
  placeholder?: string;
  disabled?: boolean;
  checked?: boolean;
  colspan?: number;
  data?: Record<string, string>;
  style?: string;
  attrs?: Record<string, string>;
  on?: { [K in keyof HTMLElementEventMap]?: (ev: HTMLElementEventMap[K]) => void };
}

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Creates an element: h("a", {href: "#/x", class: "link"}, "text"). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    if (attrs.class) el.className = attrs.class;
    if (attrs.testid) el.dataset["testid"] = attrs.testid;
    if (attrs.title) el.title = attrs.title;
    // Through the CSSOM, which a Content-Security-Policy without unsafe-inline still allows.
    if (attrs.style) el.style.cssText = attrs.style;
    if (attrs.href !== undefined) el.setAttribute("href", attrs.href);
    if (attrs.type !== undefined) el.setAttribute("type", attrs.type);
    if (attrs.placeholder !== undefined) el.setAttribute("placeholder", attrs.placeholder);
    if (attrs.colspan !== undefined) el.setAttribute("colspan", String(attrs.colspan));
    if (attrs.value !== undefined) (el as HTMLInputElement).value = attrs.value;
    if (attrs.disabled) (el as HTMLButtonElement).disabled = true;
    if (attrs.checked) (el as HTMLInputElement).checked = true;
    if (attrs.data) for (const [k, v] of Object.entries(attrs.data)) el.dataset[k] = v;
    if (attrs.attrs) for (const [k, v] of Object.entries(attrs.attrs)) el.setAttribute(k, v);
    if (attrs.on) {
      for (const [name, fn] of Object.entries(attrs.on)) {
        if (fn) el.addEventListener(name, fn as EventListener);
      }
    }
  }
  for (const c of children) append(el, c);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  for (const c of children) append(el, c);
}

export type Tone = "ok" | "bad" | "warn" | "info" | "muted";

export function badge(text: string, tone: Tone, testid?: string): HTMLSpanElement {
  return h("span", { class: `badge badge-${tone}`, ...(testid ? { testid } : {}) }, text);
}

export function card(title: Child, body: Child, opts: { testid?: string; actions?: Child; class?: string } = {}): HTMLElement {
  return h(
    "section",
    { class: `card ${opts.class ?? ""}`.trim(), ...(opts.testid ? { testid: opts.testid } : {}) },
    h("header", { class: "card-head" }, h("h2", null, title), opts.actions ? h("div", { class: "card-actions" }, opts.actions) : null),
    h("div", { class: "card-body" }, body),
  );
}

export function pageHeader(title: Child, subtitle?: Child, actions?: Child): HTMLElement {
  return h(
    "div",
    { class: "page-head" },
    h("div", null, h("h1", { testid: "page-title" }, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    actions ? h("div", { class: "page-actions" }, actions) : null,
  );
}

/** A status line for loading, empty and error states. */
export function note(text: Child, tone: "muted" | "error" = "muted", testid?: string): HTMLElement {
  return h("div", { class: `note note-${tone}`, ...(testid ? { testid } : {}) }, text);
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export function link(href: string, text: Child, testid?: string): HTMLAnchorElement {
  return h("a", { href, ...(testid ? { testid } : {}) }, text);
}

export function button(
  text: Child,
  onClick: (ev: MouseEvent) => void,
  opts: { kind?: "primary" | "danger" | "ghost" | "default"; testid?: string; disabled?: boolean; title?: string } = {},
): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: `btn btn-${opts.kind ?? "default"}`,
      on: { click: onClick },
      ...(opts.testid ? { testid: opts.testid } : {}),
      ...(opts.disabled ? { disabled: true } : {}),
      ...(opts.title ? { title: opts.title } : {}),
    },
    text,
  );
}

/** A key/value list (definition list). */
export function facts(rows: Array<[string, Child]>): HTMLElement {
  return h(
    "dl",
    { class: "facts" },
    rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]),
  );
}

export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: number | undefined;
  return (...args: A) => {
    if (timer !== undefined) window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), ms);
  };
}
