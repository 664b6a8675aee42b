// The dashboard (GET /dashboard): the network's backends, the caller's recent jobs and today's
// spend, kept live over the stream. Plain script: no framework, nothing from elsewhere.
//
// The key lives in this tab's sessionStorage and goes as X-API-Key to this app only. Live
// updates: POST /api/v2/network/stream/negotiate gives a WebSocket URL (Web PubSub) whose
// connection already gets the caller's job updates and backend changes. When it closes, the
// page negotiates a fresh URL with a growing delay (0.5 s doubling to 10 s), and after every
// (re)connect re-reads the jobs and backends, so what changed meanwhile does not stay stale.
"use strict";

(function () {
  const STORAGE_KEY = "qcos.dashboard.apiKey";
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const NETWORK_TYPES = new Set(["network", "batch"]);
  const RUN_ID = /^(.+)-(\d+)-(\d+)$/; // a network job's run: <network job id>-<slot>-<attempt>
  const FIRST_DELAY_MS = 500;
  const MAX_DELAY_MS = 10000;
  const SAFETY_REREAD_MS = 30000; // while jobs are open: an event lost in a host's crash
  const POLL_MS = 15000; // when the deployment has no stream
  const JOBS_LISTED = 20;
  const JOBS_SHOWN = 30;
  const JOBS_KEPT = 100; // older ones are forgotten
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    key: null,
    generation: 0, // bumped at every sign-in and sign-out: answers of an older one are dropped
    jobs: new Map(),
    backends: new Map(),
    network: null,
    spend: null,
    socket: null,
    connection: "signed-out",
    delay: FIRST_DELAY_MS,
    timers: new Map(), // name -> timeout id (one pending of each)
    intervals: [],
  };

  const $ = (id) => document.getElementById(id);

  // -- the API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body.detail === "string" ? body.detail : "";
      super(detail || `The gateway answered HTTP ${status}`);
      this.status = status;
      this.errorCode = body && body.error_code;
      this.requestId = body && body.request_id;
    }
  }

  // The answer's JSON (a v2 answer's `data`); throws ApiError with the standard error body's
  // message, or the browser's TypeError when the gateway cannot be reached.
  async function api(path, options) {
    const opts = options || {};
    const response = await fetch(path, {
      method: opts.method || "GET",
      headers: { "X-API-Key": opts.key || state.key, Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, body);
    }
    if (body && body.success === true && "data" in body) {
      return body.data;
    }
    return body;
  }

  function describe(error) {
    if (error instanceof ApiError) {
      const code = error.errorCode ? ` (${error.errorCode})` : "";
      return `${error.message}${code}`;
    }
    return "The gateway cannot be reached right now.";
  }

  // -- timers that belong to one sign-in ----------------------------------------------------------

  function later(name, ms, generation, fn) {
    if (state.timers.has(name)) {
      return; // one pending of each: bursts of events make one call
    }
    const id = setTimeout(() => {
      state.timers.delete(name);
      if (generation === state.generation) {
        fn();
      }
    }, ms);
    state.timers.set(name, id);
  }

  // `later`, but a call while one is pending starts its wait again (the last of a burst).
  function settled(name, ms, generation, fn) {
    clearTimeout(state.timers.get(name));
    state.timers.delete(name);
    later(name, ms, generation, fn);
  }

  // What a job that ended cost: its ledger entry is written just after its status, so read
  // once the burst of ends is over, and once more a little later.
  function spendChanged(generation) {
    settled("spend", 1500, generation, () => quietly(generation, loadSpend));
    later("spend-late", 6000, generation, () => quietly(generation, loadSpend));
  }

  function clearTimers() {
    for (const id of state.timers.values()) {
      clearTimeout(id);
    }
    state.timers.clear();
    for (const id of state.intervals) {
      clearInterval(id);
    }
    state.intervals = [];
  }

  // -- signing in and out -----------------------------------------------------------------------

  async function signIn(key) {
    const generation = ++state.generation;
    let me;
    try {
      me = await api("/user/me", { key });
    } catch (error) {
      if (generation !== state.generation) {
        return;
      }
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        sessionStorage.removeItem(STORAGE_KEY);
      }
      const refused = error instanceof ApiError && error.status < 500;
      showSignIn(refused ? `The key was not accepted: ${describe(error)}` : describe(error));
      return;
    }
    if (generation !== state.generation) {
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, key);
    state.key = key;
    $("account").textContent = `${me.email} · ${me.tier}`;
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
    showError(null);
    refresh(generation);
    connect(generation);
    state.intervals.push(setInterval(() => safetyReread(generation), SAFETY_REREAD_MS));
  }

  function signOut(message) {
    state.generation += 1;
    clearTimers();
    closeSocket();
    sessionStorage.removeItem(STORAGE_KEY);
    state.key = null;
    state.jobs.clear();
    state.backends.clear();
    state.network = null;
    state.spend = null;
    state.delay = FIRST_DELAY_MS;
    $("account").textContent = "";
    $("forget").hidden = true;
    $("board").hidden = true;
    renderJobs();
    renderBackends();
    renderSpend();
    setConnection("signed-out");
    showSignIn(message);
  }

  function showSignIn(message) {
    $("board").hidden = true;
    $("sign-in").hidden = false;
    const error = $("key-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("key").focus();
  }

  function showError(message) {
    const banner = $("error");
    banner.textContent = message || "";
    banner.hidden = !message;
  }

  // A failed read: a refused key signs out; anything else is shown and the page goes on.
  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(`The key was refused: ${describe(error)}`);
      return;
    }
    showError(describe(error));
  }

  // -- reading ----------------------------------------------------------------------------------

  function refresh(generation) {
    quietly(generation, (g) =>
      Promise.all([loadJobs(g), loadBackends(g), loadSpend(g)])
    );
  }

  function quietly(generation, load) {
    load(generation)
      .then(() => {
        if (generation === state.generation) {
          showError(null);
        }
      })
      .catch((error) => {
        if (generation === state.generation) {
          failed(error);
        }
      });
  }

  async function loadJobs(generation) {
    const page = await api(`/api/v1/jobs?limit=${JOBS_LISTED}`);
    if (generation !== state.generation) {
      return;
    }
    for (const summary of page.jobs || []) {
      const job = jobOf(summary.job_id);
      job.type = summary.type;
      job.backend = summary.backend;
      job.backends = summary.backends || [];
      job.strategy = summary.strategy || null;
      job.created_at = summary.created_at;
      job.completed_at = summary.completed_at;
      job.location = summary.location;
      setStatus(job, summary.status);
      if (isNetwork(job)) {
        if (TERMINAL.has(job.status)) {
          finishProgress(job);
        } else {
          later(`detail:${job.job_id}`, 0, generation, () => loadDetail(job.job_id, generation));
        }
      }
    }
    renderJobs();
  }

  // A network job's own view: its progress while it runs, its results once it ended.
  async function loadDetail(jobId, generation) {
    const job = state.jobs.get(jobId);
    if (!job) {
      return;
    }
    let view;
    try {
      view = await api(job.location || `/api/v2/network/execute/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (generation === state.generation && !(error instanceof ApiError && error.status === 404)) {
        failed(error);
      }
      return;
    }
    if (generation !== state.generation) {
      return;
    }
    if (view.strategy && !job.strategy) {
      job.strategy = view.strategy;
    }
    setStatus(job, view.status);
    const progress = view.progress;
    if (progress && typeof progress.runs_planned === "number") {
      setProgress(job, progress.runs_planned, progress.runs_finished);
    }
    if (Array.isArray(view.results)) {
      for (const result of view.results) {
        if (result && result.backend && !job.backends.includes(result.backend)) {
          job.backends.push(result.backend);
        }
      }
    }
    if (TERMINAL.has(job.status)) {
      finishProgress(job, Array.isArray(view.results) ? view.results.length : null);
    }
    renderJobs();
  }

  async function loadBackends(generation) {
    const [catalog, status] = await Promise.all([
      api("/api/v2/network/backends"),
      api("/api/v2/network/status"),
    ]);
    if (generation !== state.generation) {
      return;
    }
    const depth = new Map((status.backends || []).map((b) => [b.id, b]));
    state.backends.clear();
    for (const backend of catalog.backends || []) {
      const current = depth.get(backend.id);
      state.backends.set(backend.id, {
        id: backend.id,
        supplier: backend.supplier,
        mode: backend.mode,
        qubits: backend.qubits,
        status: current ? current.status : backend.status,
        queue_depth: current ? current.queue_depth : backend.queue_depth,
      });
    }
    state.network = { overall: status.overall_status, active: status.active_jobs };
    renderBackends();
  }

  async function loadSpend(generation) {
    const usage = await api("/user/usage?days=1");
    if (generation !== state.generation) {
      return;
    }
    state.spend = usage;
    renderSpend();
  }

  function safetyReread(generation) {
    if (state.connection !== "live") {
      return;
    }
    const open = [...state.jobs.values()].some((job) => !TERMINAL.has(job.status));
    if (open) {
      quietly(generation, loadJobs);
    }
  }

  // -- the jobs' state --------------------------------------------------------------------------

  function jobOf(jobId) {
    let job = state.jobs.get(jobId);
    if (!job) {
      job = {
        job_id: jobId,
        type: "job",
        status: "",
        backend: null,
        backends: [],
        strategy: null,
        created_at: "",
        completed_at: null,
        location: null,
        progress: null, // {planned, finished}
        runs: new Map(), // run id -> {backend, status}
      };
      state.jobs.set(jobId, job);
    }
    return job;
  }

  function isNetwork(job) {
    return NETWORK_TYPES.has(job.type);
  }

  function rank(status) {
    if (TERMINAL.has(status)) {
      return 2;
    }
    return !status || status === "queued" ? 0 : 1;
  }

  // Statuses only move forward: a read that began before an update cannot undo it.
  function setStatus(job, status) {
    if (!status || TERMINAL.has(job.status) || rank(status) < rank(job.status)) {
      return;
    }
    job.status = status;
  }

  function setProgress(job, planned, finished) {
    const before = job.progress;
    const done = typeof finished === "number" ? finished : before ? before.finished : 0;
    job.progress = {
      planned,
      finished: before && before.planned === planned ? Math.max(before.finished, done) : done,
    };
  }

  // An ended network job: every run it planned has ended. Its count is known from its
  // progress, its results, or (strategy all) one run per backend.
  function finishProgress(job, results) {
    let planned = job.progress ? job.progress.planned : null;
    if (planned === null && typeof results === "number" && results > 0) {
      planned = results;
    }
    if (planned === null && job.strategy === "all" && job.backends.length) {
      planned = job.backends.length;
    }
    if (planned !== null) {
      job.progress = { planned, finished: planned };
    }
  }

  // -- live updates -----------------------------------------------------------------------------

  function connect(generation) {
    if (generation !== state.generation) {
      return;
    }
    setConnection(state.connection === "live" || state.connection === "reconnecting"
      ? "reconnecting" : "connecting");
    api("/api/v2/network/stream/negotiate", { method: "POST" })
      .then((answer) => {
        if (generation !== state.generation) {
          return;
        }
        open(answer.url, generation);
      })
      .catch((error) => {
        if (generation !== state.generation) {
          return;
        }
        if (error instanceof ApiError && error.status === 401) {
          failed(error);
        } else if (error instanceof ApiError && error.status === 503) {
          poll(generation);
        } else {
          reconnect(generation);
        }
      });
  }

  function open(url, generation) {
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = () => {
      if (generation !== state.generation) {
        return;
      }
      state.delay = FIRST_DELAY_MS;
      setConnection("live");
      refresh(generation); // what changed while this page had no connection
    };
    socket.onmessage = (event) => {
      if (generation === state.generation) {
        onMessage(event.data, generation);
      }
    };
    socket.onclose = () => {
      if (state.socket === socket) {
        state.socket = null;
        reconnect(generation);
      }
    };
    socket.onerror = () => {}; // a close follows
  }

  function closeSocket() {
    const socket = state.socket;
    state.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close();
    }
  }

  function reconnect(generation) {
    if (generation !== state.generation) {
      return;
    }
    const delay = state.delay;
    state.delay = Math.min(delay * 2, MAX_DELAY_MS);
    setConnection("reconnecting", delay);
    later("reconnect", delay, generation, () => connect(generation));
  }

  function poll(generation) {
    setConnection("polling");
    refresh(generation);
    state.intervals.push(setInterval(() => refresh(generation), POLL_MS));
  }

  function setConnection(name, delay) {
    state.connection = name;
    const badge = $("connection");
    badge.dataset.state = name;
    const texts = {
      "signed-out": "signed out",
      connecting: "connecting…",
      live: "live",
      reconnecting: `reconnecting${delay ? ` in ${(delay / 1000).toFixed(1)} s` : "…"}`,
      polling: `no stream on this deployment: refreshing every ${POLL_MS / 1000} s`,
    };
    badge.textContent = texts[name] || name;
  }

  function onMessage(text, generation) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!message || typeof message !== "object") {
      return;
    }
    if (message.type === "job_update" && typeof message.job_id === "string") {
      onJobUpdate(message, generation);
    } else if (message.type === "backend_status" && typeof message.id === "string") {
      onBackendStatus(message, generation);
    } else if (message.type === "error") {
      showError(`Live updates: ${message.detail || message.error_code}`);
    }
  }

  // The network job whose run this update is, when this page lists it.
  function parentOf(message) {
    if (typeof message.network_job_id === "string") {
      return message.network_job_id;
    }
    const match = RUN_ID.exec(message.job_id);
    if (match && state.jobs.has(match[1]) && isNetwork(state.jobs.get(match[1]))) {
      return match[1];
    }
    return null;
  }

  function onJobUpdate(message, generation) {
    const parent = parentOf(message);
    if (parent !== null) {
      onRunUpdate(parent, message, generation);
      return;
    }
    const known = state.jobs.has(message.job_id);
    if (!known && message.job_type !== "network_job" && RUN_ID.test(message.job_id)) {
      // perhaps a run of a network job this page has not listed yet: the listing says
      later("jobs", 300, generation, () => quietly(generation, loadJobs));
      return;
    }
    const job = jobOf(message.job_id);
    if (!known) {
      job.type = message.job_type === "network_job" ? "network" : "job";
      job.created_at = message.timestamp || new Date().toISOString();
      later("jobs", 300, generation, () => quietly(generation, loadJobs)); // its other fields
    }
    if (typeof message.backend === "string" && !job.backend && !isNetwork(job)) {
      job.backend = message.backend;
    }
    setStatus(job, message.status);
    if (typeof message.runs_planned === "number") {
      setProgress(job, message.runs_planned, message.runs_finished);
    }
    const run = message.run;
    if (run && typeof run === "object" && typeof run.run_id === "string") {
      job.runs.set(run.run_id, { backend: run.backend, status: run.status });
    }
    if (TERMINAL.has(job.status)) {
      job.completed_at = job.completed_at || message.timestamp;
      if (isNetwork(job)) {
        finishProgress(job);
        if (!job.progress) {
          later(`detail:${job.job_id}`, 200, generation, () => loadDetail(job.job_id, generation));
        }
      }
      spendChanged(generation);
    } else if (isNetwork(job) && typeof message.runs_planned !== "number") {
      later(`detail:${job.job_id}`, 200, generation, () => loadDetail(job.job_id, generation));
    }
    renderJobs();
  }

  function onRunUpdate(parentId, message, generation) {
    const job = state.jobs.get(parentId);
    if (!job) {
      later("jobs", 300, generation, () => quietly(generation, loadJobs));
      return;
    }
    const run = job.runs.get(message.job_id) || { backend: null, status: "" };
    if (typeof message.backend === "string") {
      run.backend = message.backend;
    }
    if (rank(message.status) >= rank(run.status)) {
      run.status = message.status;
    }
    if (TERMINAL.has(message.status)) {
      spendChanged(generation);
    }
    job.runs.set(message.job_id, run);
    if (!TERMINAL.has(job.status)) {
      setStatus(job, "running");
      // the network job's own updates carry its progress; without them, its view does
      later(`detail:${parentId}`, 300, generation, () => loadDetail(parentId, generation));
    }
    renderJobs();
  }

  function onBackendStatus(message, generation) {
    const backend = state.backends.get(message.id);
    if (!backend) {
      later("backends", 300, generation, () => quietly(generation, loadBackends));
      return;
    }
    if (typeof message.status === "string") {
      backend.status = message.status;
    }
    if (typeof message.queue_depth === "number") {
      backend.queue_depth = message.queue_depth;
    }
    renderBackends();
  }

  // -- drawing ----------------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) {
        node.setAttribute(name, String(value));
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function badge(status) {
    return el("span", { class: "status", "data-status": status || "unknown" }, status || "…");
  }

  // A small horizontal bar: `part` of `whole`.
  function bar(part, whole, width, done) {
    const fill = whole > 0 ? Math.max(0, Math.min(1, part / whole)) * width : 0;
    const drawing = svg("svg", {
      width,
      height: 8,
      viewBox: `0 0 ${width} 8`,
      "aria-hidden": "true",
    });
    drawing.append(svg("rect", { class: "bar-track", x: 0, y: 0, width, height: 8, rx: 3 }));
    const shade = done ? "bar-done" : "bar-fill";
    drawing.append(svg("rect", { class: shade, x: 0, y: 0, width: fill, height: 8, rx: 3 }));
    return drawing;
  }

  function when(iso) {
    if (!iso) {
      return "";
    }
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) {
      return iso;
    }
    const sameDay = moment.toDateString() === new Date().toDateString();
    return sameDay ? moment.toLocaleTimeString() : moment.toLocaleString();
  }

  function progressCell(job) {
    if (!isNetwork(job)) {
      return el("td", { class: "job-progress" }, "—");
    }
    const cell = el("td", { class: "job-progress" });
    if (job.progress && job.progress.planned > 0) {
      const { planned, finished } = job.progress;
      cell.append(
        el(
          "div",
          { class: "progress" },
          bar(finished, planned, 80, finished >= planned),
          el("span", { class: "progress-text" }, `${finished} of ${planned} runs`),
        ),
      );
    } else {
      const waiting = TERMINAL.has(job.status) ? "" : "starting…";
      cell.append(el("span", { class: "progress-text hint" }, waiting));
    }
    if (job.runs.size) {
      const runs = el("div", { class: "runs" });
      for (const [runId, run] of [...job.runs.entries()].sort()) {
        const name = run.backend || `run ${runId.slice(job.job_id.length + 1)}`;
        runs.append(el("span", { class: "status", "data-status": run.status, title: runId }, name));
      }
      cell.append(runs);
    }
    return cell;
  }

  function renderJobs() {
    const newest = [...state.jobs.values()].sort((a, b) =>
      a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0,
    );
    for (const old of newest.slice(JOBS_KEPT)) {
      state.jobs.delete(old.job_id);
    }
    const jobs = newest.slice(0, JOBS_SHOWN);
    const rows = jobs.map((job) => {
      const kind = job.strategy ? `${job.type} · ${job.strategy}` : job.type;
      const backend = job.backend || job.backends.join(", ") || "—";
      return el(
        "tr",
        { "data-job-id": job.job_id, "data-status": job.status },
        el("td", { class: "job-id" }, el("code", { title: job.job_id }, job.job_id)),
        el("td", { class: "job-type" }, kind),
        el("td", { class: "job-backend" }, backend),
        el("td", { class: "job-status" }, badge(job.status)),
        progressCell(job),
        el("td", { class: "job-created" }, when(job.created_at)),
      );
    });
    $("jobs").tBodies[0].replaceChildren(...rows);
    $("jobs-empty").hidden = rows.length > 0 || !state.key;
  }

  function renderBackends() {
    const backends = [...state.backends.values()];
    const deepest = Math.max(5, ...backends.map((b) => b.queue_depth || 0));
    const rows = backends.map((backend) =>
      el(
        "tr",
        { "data-backend-id": backend.id, "data-status": backend.status },
        el("td", { class: "backend-id" }, el("code", {}, backend.id)),
        el("td", {}, backend.supplier || ""),
        el("td", {}, backend.mode || ""),
        el("td", { class: "num" }, backend.qubits ?? "—"),
        el("td", { class: "backend-status" }, badge(backend.status)),
        el(
          "td",
          { class: "backend-queue" },
          el(
            "div",
            { class: "queue" },
            bar(backend.queue_depth || 0, deepest, 60, false),
            el("span", { class: "queue-depth" }, backend.queue_depth ?? 0),
          ),
        ),
      ),
    );
    $("backends").tBodies[0].replaceChildren(...rows);
    const summary = $("network-status");
    if (state.network) {
      summary.dataset.status = state.network.overall;
      summary.className = "status";
      const open = state.network.active === 1 ? "1 open job" : `${state.network.active} open jobs`;
      summary.textContent = `${state.network.overall} · ${open}`;
    } else {
      summary.textContent = "";
    }
  }

  function money(text) {
    const value = Number.parseFloat(text);
    return Number.isFinite(value) ? value : 0;
  }

  function renderSpend() {
    const total = $("spend-total");
    const chart = $("spend-chart");
    const usage = state.spend;
    if (!usage) {
      total.textContent = "";
      chart.replaceChildren();
      return;
    }
    const totals = usage.totals || [];
    const lines = totals.map(
      (t) => `Charged ${t.cost} ${t.currency} for ${t.jobs} jobs (${t.shots} shots); ` +
        `list price ${t.list_cost} ${t.currency}.`,
    );
    if (!lines.length) {
      lines.push("Nothing charged today.");
    }
    const quota = usage.quota;
    if (quota) {
      lines.push(`Jobs today: ${quota.used} of ${quota.daily_limit}.`);
    }
    total.replaceChildren(...lines.flatMap((line, i) => (i ? [el("br"), line] : [line])));
    chart.replaceChildren(spendChart(usage.backends || []));
  }

  // Per backend (and currency): the list price of what ran (light) and what was charged.
  function spendChart(rows) {
    const shown = [...rows].sort((a, b) => money(b.list_cost) - money(a.list_cost)).slice(0, 12);
    const label = 170;
    const width = 520;
    const barsWidth = width - label - 110;
    const rowHeight = 24;
    const height = 22 + rowHeight * Math.max(1, shown.length);
    const drawing = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": "Spend per backend today",
    });
    drawing.append(svg("rect", { class: "bar-list", x: label, y: 4, width: 10, height: 8 }));
    drawing.append(svg("text", { class: "legend", x: label + 14, y: 12 }, "list price"));
    drawing.append(svg("rect", { class: "bar-cost", x: label + 80, y: 4, width: 10, height: 8 }));
    drawing.append(svg("text", { class: "legend", x: label + 94, y: 12 }, "charged"));
    if (!shown.length) {
      drawing.append(svg("text", { class: "legend", x: 0, y: 36 }, "No jobs ran today."));
      return drawing;
    }
    const largest = new Map();
    for (const row of shown) {
      const top = Math.max(money(row.list_cost), money(row.cost));
      largest.set(row.currency, Math.max(largest.get(row.currency) || 0, top));
    }
    shown.forEach((row, i) => {
      const y = 22 + i * rowHeight;
      const scale = largest.get(row.currency) || 0;
      const length = (value) => (scale > 0 ? (money(value) / scale) * barsWidth : 0);
      const name = row.currency === "USD" ? row.backend : `${row.backend} (${row.currency})`;
      drawing.append(svg("text", { x: 0, y: y + 12 }, name));
      const listed = length(row.list_cost);
      const charged = length(row.cost);
      const figures = `${row.cost} / ${row.list_cost} ${row.currency}`;
      drawing.append(svg("rect", { class: "bar-list", x: label, y, width: listed, height: 16 }));
      drawing.append(svg("rect", {
        class: "bar-cost", x: label, y: y + 5, width: charged, height: 6,
      }));
      drawing.append(svg("text", { x: label + barsWidth + 6, y: y + 12 }, figures));
    });
    return drawing;
  }

  // -- start --------------------------------------------------------------------------------------

  function main() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (key) {
        $("key").value = "";
        signIn(key);
      }
    });
    $("forget").addEventListener("click", () => signOut(null));
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) {
      signIn(stored);
    } else {
      showSignIn(null);
    }
  }

  main();
})();
