// Renders one page of units at a time from the inline JSON; strips load lazily as they scroll in.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gallery-data").textContent);
  var units = data.units;
  var GAP = 4;
  var main = document.getElementById("units");
  var search = document.getElementById("search");
  var concept = document.getElementById("concept");
  var sort = document.getElementById("sort");
  var pageSize = document.getElementById("page-size");
  var state = { q: "", concept: "", sort: "unit", page: 0, size: data.pageSize };

  units.forEach(function (u) {
    u.text = ("unit " + u.u + " #" + u.u + " " + (u.x || "") + " " + (u.alt || []).join(" ")).toLowerCase();
  });
  data.concepts.forEach(function (c) {
    var option = document.createElement("option");
    option.value = c[0];
    option.textContent = c[0] + " (" + c[1] + ")";
    concept.appendChild(option);
  });
  var widest = units.reduce(function (m, u) { return Math.max(m, u.k || 0); }, 1);
  main.style.setProperty("--card-min", (widest * data.thumb + (widest - 1) * GAP + 26) + "px");
  if (![24, 48, 96, 192].includes(state.size)) {
    var custom = document.createElement("option");
    custom.value = String(state.size);
    custom.textContent = state.size + " per page";
    pageSize.appendChild(custom);
  }

  function label(u) { return u.x || (u.n ? "unexplained" : "(inactive)"); }

  function selected() {
    var q = state.q.trim().toLowerCase();
    var list = units.filter(function (u) {
      if (q && u.text.indexOf(q) < 0) return false;
      if (state.concept === "__unexplained__") return !u.x;
      if (state.concept === "__inactive__") return !u.n;
      if (state.concept === "__uncertain__") return !!u.unc;
      return !state.concept || u.x === state.concept;
    });
    if (state.sort !== "unit") {
      var sign = state.sort.slice(-5) === "-desc" ? -1 : 1;
      var key = state.sort.indexOf("confidence") === 0 ? "c" : "s";
      list = list.slice().sort(function (a, b) {
        var sa = a[key] == null ? null : a[key], sb = b[key] == null ? null : b[key];
        if (sa === sb) return a.u - b.u;
        if (sa === null) return 1;
        if (sb === null) return -1;
        return sign * (sa - sb);
      });
    }
    return list;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  function card(u) {
    var node = el("article", "unit" + (u.n ? "" : " inactive") + (u.x ? "" : " unexplained") + (u.unc ? " uncertain" : ""));
    node.id = "unit-" + u.u;
    var head = el("div", "head");
    head.appendChild(el("span", "id", "unit " + u.u));
    head.appendChild(el("span", "label", label(u)));
    if (u.unc) {
      var flag = el("span", "flag", "uncertain");
      flag.title = "confidence " + u.c + " is below 0.5: the patches barely prefer this label over the runner-up";
      head.appendChild(flag);
    }
    if (u.c != null) {
      var conf = el("span", "confidence", "conf " + u.c.toFixed(2));
      conf.title = "confidence in [0, 1]: the patches' lead for this label over the runner-up, against chance";
      head.appendChild(conf);
    }
    if (u.s != null) {
      var score = el("span", "score", u.s.toFixed(3));
      var parts = ["score " + u.s];
      if (u.m != null) parts.push("margin " + u.m);
      if (u.a != null) parts.push("agreement " + u.a);
      score.title = parts.join(" · ");
      head.appendChild(score);
    }
    node.appendChild(head);
    if (u.alt && u.alt.length) node.appendChild(el("div", "alt", "also: " + u.alt.slice(0, 4).join(" · ")));
    if (u.img) {
      var img = document.createElement("img");
      img.setAttribute("loading", "lazy");
      img.decoding = "async";
      img.width = u.k * data.thumb + (u.k - 1) * GAP;
      img.height = data.thumb;
      img.alt = "top patches of unit " + u.u;
      img.title = "image ids, left to right: " + (u.ids || []).join(", ");
      img.src = u.img;
      node.appendChild(img);
    } else {
      var empty = el("div", "empty", "no patches: the unit never fires");
      empty.style.height = data.thumb + "px";
      node.appendChild(empty);
    }
    var meta = u.n + " patch" + (u.n === 1 ? "" : "es") + " stored";
    if (u.w) meta += " · " + u.w + " shown weak";
    node.appendChild(el("div", "meta", meta));
    return node;
  }

  function render() {
    var list = selected();
    var pages = Math.max(1, Math.ceil(list.length / state.size));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    var start = state.page * state.size;
    var fragment = document.createDocumentFragment();
    list.slice(start, start + state.size).forEach(function (u) { fragment.appendChild(card(u)); });
    if (!list.length) fragment.appendChild(el("div", "none", "No unit matches."));
    main.replaceChildren(fragment);
    var info = list.length
      ? "page " + (state.page + 1) + " of " + pages + " · units " + (start + 1) + "–" + Math.min(start + state.size, list.length) + " of " + list.length
      : "0 units";
    document.querySelectorAll(".pager").forEach(function (pager) {
      pager.querySelector(".page-info").textContent = info;
      pager.querySelector('[data-step="-1"]').disabled = state.page === 0;
      pager.querySelector('[data-step="1"]').disabled = state.page >= pages - 1;
    });
    var hash = new URLSearchParams({ q: state.q, concept: state.concept, sort: state.sort, page: String(state.page + 1), size: String(state.size) });
    history.replaceState(null, "", "#" + hash.toString());
  }

  function restore() {
    var params = new URLSearchParams(location.hash.slice(1));
    state.q = params.get("q") || "";
    state.concept = params.get("concept") || "";
    state.sort = params.get("sort") || "unit";
    state.page = (parseInt(params.get("page"), 10) || 1) - 1;
    state.size = parseInt(params.get("size"), 10) || state.size;
    search.value = state.q;
    concept.value = state.concept;
    sort.value = state.sort;
    pageSize.value = String(state.size);
  }

  function go(step) {
    state.page += step;
    render();
    window.scrollTo(0, 0);
  }

  var timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = search.value; state.page = 0; render(); }, 120);
  });
  concept.addEventListener("change", function () { state.concept = concept.value; state.page = 0; render(); });
  sort.addEventListener("change", function () { state.sort = sort.value; state.page = 0; render(); });
  pageSize.addEventListener("change", function () { state.size = parseInt(pageSize.value, 10); state.page = 0; render(); });
  document.querySelectorAll(".pager button").forEach(function (button) {
    button.addEventListener("click", function () { go(parseInt(button.dataset.step, 10)); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.target.matches("input, select, textarea")) return;
    if (event.key === "ArrowRight") go(1);
    if (event.key === "ArrowLeft") go(-1);
  });

  restore();
  render();
})();
