// The results browser's one script: sortable tables on the index, and the item browser's
// sorting, filtering and paging. No framework, no network: it only reads and reorders the page.
// The item browser's state lives in the address's fragment, e.g.
//   items-tiny-toy_shapes.html#sort=instdiffedit:mask_iou&desc=1&flag=failed&page=2
// keys: sort (item | <configuration>:<metric>), desc (1), flag (failed | flagged | ok),
// type (an edit type), where (<configuration>:<metric>), op (le | ge), value, per, page,
// hide (configurations, comma-separated).
"use strict";

(function () {
  // A cell's sort key: its leading number ("43.2 [30.1, 50.2]" -> 43.2), else its text; empty and n/a sort last.
  function cellKey(text) {
    const trimmed = text.trim();
    if (trimmed === "" || trimmed === "n/a") return null;
    const number = parseFloat(trimmed);
    return Number.isNaN(number) ? trimmed : number;
  }

  // Missing values last whatever the order; numbers before texts; ties keep their order.
  function compare(a, b, descending) {
    if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
    if (typeof a !== typeof b) return typeof a === "number" ? -1 : 1;
    const order = typeof a === "number" ? a - b : a.localeCompare(b, undefined, { numeric: true });
    return descending ? -order : order;
  }

  function sortableTables() {
    for (const table of document.querySelectorAll("table.sortable")) {
      const heads = Array.from(table.tHead.rows[0].cells);
      heads.forEach((th, column) => {
        th.querySelector("button").addEventListener("click", () => {
          const descending = th.getAttribute("aria-sort") === "ascending";
          heads.forEach((h) => h.removeAttribute("aria-sort"));
          th.setAttribute("aria-sort", descending ? "descending" : "ascending");
          const body = table.tBodies[0];
          const rows = Array.from(body.rows).map((row) => ({ row, key: cellKey(row.cells[column].textContent) }));
          rows.sort((a, b) => compare(a.key, b.key, descending));
          body.replaceChildren(...rows.map((r) => r.row));
        });
      });
    }
  }

  function itemBrowser(main) {
    const form = main.querySelector("form.controls");
    const body = main.querySelector("table.items tbody");
    const count = main.querySelector(".pager .count");
    const defaultPer = form.dataset.defaultPer;
    const records = Array.from(body.rows).map((row) => {
      const record = { row, item: row.dataset.item, type: row.dataset.type, values: new Map(), status: new Map(), flagged: new Map() };
      for (const cell of row.querySelectorAll("td[data-config]")) {
        const config = cell.dataset.config;
        record.status.set(config, cell.dataset.status);
        record.flagged.set(config, cell.dataset.flagged === "1");
        for (const value of cell.querySelectorAll("[data-metric]")) {
          record.values.set(config + ":" + value.dataset.metric, parseFloat(value.dataset.value));
        }
      }
      return record;
    });
    const columns = Array.from(main.querySelectorAll("thead [data-config]"));  // header cells, then every row's cells
    for (const record of records) columns.push(...record.row.querySelectorAll("td[data-config]"));
    const field = (name) => form.elements.namedItem(name);
    const sortKeys = new Set(Array.from(field("sort").options, (o) => o.value));
    const pageSizes = new Set(Array.from(field("per").options, (o) => o.value));

    function readState() {
      const hash = new URLSearchParams(location.hash.slice(1));
      const get = (name, fallback) => hash.get(name) || fallback;
      return {
        sort: sortKeys.has(hash.get("sort")) ? hash.get("sort") : "item",
        desc: hash.get("desc") === "1",
        flag: get("flag", ""),
        type: get("type", ""),
        where: hash.get("where") !== "item" && sortKeys.has(hash.get("where")) ? hash.get("where") : "",
        op: get("op", "le") === "ge" ? "ge" : "le",
        value: get("value", ""),
        per: Number(pageSizes.has(hash.get("per")) ? hash.get("per") : defaultPer),
        page: Math.max(1, parseInt(get("page", "1"), 10) || 1),
        hide: new Set(get("hide", "").split(",").filter(Boolean)),
      };
    }

    function writeState(state) {
      const hash = new URLSearchParams();
      if (state.sort !== "item") hash.set("sort", state.sort);
      if (state.desc) hash.set("desc", "1");
      for (const name of ["flag", "type", "where"]) if (state[name]) hash.set(name, state[name]);
      if (state.where) {
        hash.set("op", state.op);
        if (state.value !== "") hash.set("value", state.value);
      }
      if (String(state.per) !== defaultPer) hash.set("per", state.per);
      if (state.page > 1) hash.set("page", state.page);
      if (state.hide.size) hash.set("hide", Array.from(state.hide).join(","));
      history.replaceState(null, "", "#" + hash.toString());
      render(state);
    }

    function fromForm() {
      const boxes = Array.from(main.querySelectorAll("input[name=show]"));
      return {
        sort: field("sort").value,
        desc: field("desc").value === "1",
        flag: field("flag").value,
        type: field("type") ? field("type").value : "",
        where: field("where").value,
        op: field("op").value,
        value: field("value").value,
        per: Number(field("per").value),
        page: 1,
        hide: new Set(boxes.filter((box) => !box.checked).map((box) => box.value)),
      };
    }

    function keep(record, state) {
      const shown = Array.from(record.status.keys()).filter((config) => !state.hide.has(config));
      if (state.flag === "failed" && !shown.some((c) => record.status.get(c) === "failed")) return false;
      if (state.flag === "flagged" && !shown.some((c) => record.flagged.get(c))) return false;
      if (state.flag === "ok" && !shown.every((c) => record.status.get(c) === "ok")) return false;
      if (state.type && record.type !== state.type) return false;
      if (state.where && state.value !== "") {
        const value = record.values.get(state.where);
        const bound = Number(state.value);
        if (value === undefined || Number.isNaN(value)) return false;
        if (state.op === "le" ? value > bound : value < bound) return false;
      }
      return true;
    }

    function key(record, sort) {
      if (sort === "item") return record.item;
      const value = record.values.get(sort);
      return value === undefined || Number.isNaN(value) ? null : value;
    }

    function render(state) {
      field("sort").value = state.sort;
      field("desc").value = state.desc ? "1" : "";
      field("flag").value = state.flag;
      if (field("type")) field("type").value = state.type;
      field("where").value = state.where;
      field("op").value = state.op;
      field("value").value = state.value;
      field("per").value = String(state.per);
      for (const box of main.querySelectorAll("input[name=show]")) box.checked = !state.hide.has(box.value);
      for (const cell of columns) cell.hidden = state.hide.has(cell.dataset.config);
      for (const button of main.querySelectorAll("button[data-sort]")) {
        const active = button.dataset.sort === state.sort;
        button.classList.toggle("active", active);
        button.textContent = button.textContent.replace(/ [↑↓]$/, "") + (active ? (state.desc ? " ↓" : " ↑") : "");
      }
      const shown = records.filter((record) => keep(record, state));
      shown.sort((a, b) => compare(key(a, state.sort), key(b, state.sort), state.desc) || compare(a.item, b.item, false));
      const pages = Math.max(1, Math.ceil(shown.length / state.per));
      const page = Math.min(state.page, pages);
      const first = (page - 1) * state.per;
      body.replaceChildren(...shown.slice(first, first + state.per).map((record) => record.row));
      count.textContent = shown.length
        ? `items ${first + 1}–${Math.min(first + state.per, shown.length)} of ${shown.length} (page ${page} of ${pages})`
        : `no item matches (of ${records.length})`;
      main.querySelector("[data-page=prev]").disabled = page <= 1;
      main.querySelector("[data-page=next]").disabled = page >= pages;
      main.dataset.page = String(page);
    }

    form.addEventListener("change", () => writeState(fromForm()));
    form.addEventListener("submit", (event) => event.preventDefault());
    for (const button of main.querySelectorAll("button[data-sort]")) {
      button.addEventListener("click", () => {
        const state = readState();
        state.desc = state.sort === button.dataset.sort ? !state.desc : false;
        state.sort = button.dataset.sort;
        state.page = 1;
        writeState(state);
      });
    }
    for (const button of main.querySelectorAll("button[data-page]")) {
      button.addEventListener("click", () => {
        const state = readState();
        state.page = Number(main.dataset.page) + (button.dataset.page === "next" ? 1 : -1);
        writeState(state);
      });
    }
    window.addEventListener("hashchange", () => render(readState()));
    render(readState());
  }

  sortableTables();
  const browser = document.querySelector("main.browser");
  if (browser) itemBrowser(browser);
})();
