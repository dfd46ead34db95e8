// #/models: registered models (registered-models/search, paged on the server).

import { api, quote, type RegisteredModel } from "./api";
import { button, card, errorText, h, note, pageHeader, replace } from "./dom";
import { fmtTime } from "./format";
import { href, type PageContext } from "./router";

const PAGE_SIZE = 50;

export function aliasChips(aliases: Array<{ alias: string; version: string }> | undefined): HTMLElement {
  const list = [...(aliases ?? [])].sort((a, b) => a.alias.localeCompare(b.alias));
  return h(
    "div",
    { class: "chips" },
    list.length === 0 ? h("span", { class: "muted" }, "—") : list.map((a) => h("span", { class: "chip", data: { alias: a.alias } }, `@${a.alias}`, h("span", { class: "chip-tag" }, `v${a.version}`))),
  );
}

export async function modelsPage(ctx: PageContext): Promise<void> {
  let search = ctx.query.get("q") ?? "";
  let tokens: Array<string | undefined> = [undefined];
  let pageIndex = 0;

  ctx.root.append(pageHeader("Models", "Registered models, their aliases and newest versions."));
  const input = h("input", { type: "search", class: "input", placeholder: "name contains…", value: search, testid: "models-search" });
  const tableBox = h("div", { class: "table-wrap" });
  const pager = h("div", { class: "pager" });
  ctx.root.append(
    card(
      "Registered models",
      [
        h(
          "form",
          {
            class: "toolbar",
            on: {
              submit: (ev) => {
                ev.preventDefault();
                search = input.value.trim();
                tokens = [undefined];
                pageIndex = 0;
                void load();
              },
            },
          },
          input,
          h("button", { type: "submit", class: "btn btn-primary" }, "Search"),
        ),
        tableBox,
        pager,
      ],
      { testid: "models-card" },
    ),
  );

  const render = (models: RegisteredModel[], next: string | undefined) => {
    if (models.length === 0) {
      replace(tableBox, note(search ? "No model matches." : "No registered models yet.", "muted", "models-empty"));
    } else {
      replace(
        tableBox,
        h(
          "table",
          { class: "table", testid: "models-table" },
          h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Aliases"), h("th", null, "Newest version"), h("th", null, "Updated"), h("th", null, "Description"), h("th", null, ""))),
          h(
            "tbody",
            null,
            models.map((m) => {
              const newest = [...(m.latest_versions ?? [])].sort((a, b) => Number(b.version) - Number(a.version))[0];
              return h(
                "tr",
                { testid: "model-row", data: { model: m.name } },
                h("td", null, h("a", { href: href("models", [m.name]), class: "strong" }, m.name)),
                h("td", null, aliasChips(m.aliases)),
                h("td", null, newest ? `v${newest.version}` : "—"),
                h("td", { class: "nowrap" }, fmtTime(m.last_updated_timestamp ?? m.creation_timestamp)),
                h("td", { class: "wrap" }, m.description ?? ""),
                h("td", { class: "nowrap" }, h("a", { href: href("monitoring", [m.name]) }, "Monitoring")),
              );
            }),
          ),
        ),
      );
    }
    if (pageIndex === 0 && !next) {
      replace(pager);
      return;
    }
    replace(
      pager,
      button("← Previous", () => {
        pageIndex--;
        void load();
      }, { disabled: pageIndex === 0 }),
      button("Next →", () => {
        tokens[pageIndex + 1] = next;
        pageIndex++;
        void load();
      }, { disabled: !next }),
    );
  };

  const load = async () => {
    ctx.setQuery({ q: search });
    tableBox.classList.add("loading");
    try {
      const filter = search ? `name LIKE ${quote(`%${search}%`)}` : "";
      const page = await api.searchModels(filter, PAGE_SIZE, tokens[pageIndex]);
      if (!ctx.alive()) return;
      render(page.registered_models ?? [], page.next_page_token || undefined);
    } catch (e) {
      replace(tableBox, note(`Could not search models: ${errorText(e)}`, "error"));
    } finally {
      tableBox.classList.remove("loading");
    }
  };
  await load();
}
