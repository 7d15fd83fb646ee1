// The live seat-map page: signs in as the demo customer, draws an event's seats, holds and buys
// them, and follows everybody else's changes over the seat-map subscription.

import { createClient } from "graphql-ws/client";
import { ApiError, createApi, newKey, signIn } from "./api.js";
import { SeatMap, TIER_PALETTE } from "./seatmap.js";

// The seeded demo customer (README, "Quick start") and the simulated provider's succeeding card.
const DEMO_EMAIL = "customer@seatstorm.dev";
const DEMO_PASSWORD = "seatstorm-customer";
const PAYMENT_TOKEN = "tok_visa";

const EVENTS = `{
  events(first: 50) {
    nodes { id title startsAt waitingRoomRequired venue { name } tiers { kind } }
  }
}`;
const EVENT_AND_MAP = `query ($id: ID!) {
  event(id: $id) {
    id title startsAt waitingRoomRequired maxTicketsPerUser
    venue { name city }
    tiers { id name kind priceCents currency }
  }
  seatMap(eventId: $id) {
    sections {
      section { id name kind x y }
      tierId available
      seats { id row number x y status tierId accessible }
    }
  }
  myHolds { id status expiresAt totalCents event { id } seats { id } }
}`;
// Compact: a snapshot is the statuses as runs of letters, a delta each changed seat's position and
// letter, both in the order of `seatMap` (16,000 seats as objects would be a megabyte per snapshot).
const SEAT_FEED = `subscription ($id: ID!, $since: Int) {
  seatMapChanged(eventId: $id, sinceSeq: $since, snapshotFormat: RUNS) {
    kind seq previousSeq statuses statusChanges
  }
}`;
const STATUS = { A: "AVAILABLE", H: "HELD", S: "SOLD" };
const ORDER_FEED = `subscription ($id: ID!) {
  orderUpdated(eventId: $id) { kind hold { id status expiresAt totalCents seats { id } } }
}`;
const JOIN_QUEUE = `mutation ($id: ID!) {
  joinQueue(eventId: $id) { status position aheadOfYou estimatedWaitSeconds opensAt pass passExpiresAt }
}`;
const QUEUE_FEED = `subscription ($id: ID!) {
  queuePosition(eventId: $id) { status position aheadOfYou estimatedWaitSeconds opensAt pass passExpiresAt }
}`;
const HOLD_SEATS = `mutation ($input: HoldSeatsInput!) {
  holdSeats(input: $input) { id status expiresAt totalCents seats { id } }
}`;
const CHECKOUT = `mutation ($input: CheckoutInput!) {
  checkout(input: $input) { id status totalCents currency tickets { id } }
}`;
const RELEASE = `mutation ($id: ID!) { releaseHold(holdId: $id) { id status } }`;

const $ = (id) => document.getElementById(id);
const api = createApi("/graphql");
const map = new SeatMap($("map"));

const state = {
  event: null,
  seats: new Map(), // seat id -> seat { id, row, number, x, y, status, tierId, section }
  layout: [], // the seats in `seatMap` order: what the live feed's positions refer to
  byLabel: new Map(), // "section|row|number" -> seat
  tiers: new Map(), // tier id -> tier
  selected: new Set(),
  hold: null, // { id, seatIds: Set, expiresAt, totalCents }
  owned: new Set(), // seats bought on this page
  queuePass: null,
  inspected: null,
  seq: null,
  stops: [], // disposers of this event's subscriptions
  // Idempotency keys live as long as the outcome of their request is unknown, so a retry after a
  // network failure can never hold or charge twice.
  holdKey: null,
  buyKey: null,
};

const ws = createClient({
  url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
  // A function, so every reconnect sends the current (possibly refreshed) token.
  connectionParams: () => (api.token() ? { Authorization: `Bearer ${api.token()}` } : {}),
  retryAttempts: 30,
  on: {
    connecting: () => setConnection("connecting", "Live: connecting…"),
    connected: () => setConnection("open", "Live: connected"),
    closed: (event) => setConnection("closed", `Live: disconnected${event?.code ? ` (${event.code})` : ""}`),
  },
});

function setConnection(stateName, text) {
  $("connection").dataset.state = stateName;
  $("connection").textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Messages

function showError(error) {
  const message = $("message");
  if (error instanceof ApiError) {
    message.dataset.code = error.code;
    message.textContent = `${error.code}: ${error.message}`;
  } else if (Array.isArray(error) && error.length > 0) {
    // A subscription's GraphQL errors.
    const code = error[0].extensions?.code ?? "UNKNOWN";
    message.dataset.code = code;
    message.textContent = `${code}: ${error[0].message}`;
  } else if (error && typeof error.code === "number") {
    message.dataset.code = `WS_${error.code}`;
    message.textContent = `The live connection closed (${error.code}${error.reason ? `: ${error.reason}` : ""}).`;
  } else {
    message.dataset.code = "CLIENT_ERROR";
    message.textContent = String(error?.message ?? error);
  }
}

function showInfo(text) {
  $("message").dataset.code = "";
  $("message").textContent = text;
}

function money(cents, currency = "USD") {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

const STATUS_TEXT = { AVAILABLE: "available", HELD: "held", SOLD: "sold" };

// ---------------------------------------------------------------------------------------------
// Events and the seat map

async function loadEvents() {
  const { events } = await api.request(EVENTS);
  const select = $("event");
  select.replaceChildren(
    ...events.nodes.map((event) => new Option(`${event.title} · ${event.venue.name}`, event.id)),
  );
  // The one named in ?event=, else the first with reserved seats (a general-admission event has no
  // seats to draw).
  const wanted = new URLSearchParams(location.search).get("event");
  const first = events.nodes.find((event) => event.id === wanted) ??
    events.nodes.find((event) => event.tiers.some((tier) => tier.kind === "RESERVED"));
  select.disabled = false;
  if (first) {
    select.value = first.id;
    await openEvent(first.id);
  }
}

async function openEvent(eventId) {
  for (const stop of state.stops) stop();
  Object.assign(state, {
    event: null,
    stops: [],
    selected: new Set(),
    hold: null,
    owned: new Set(),
    queuePass: null,
    inspected: null,
    seq: null,
    holdKey: null,
    buyKey: null,
  });
  map.highlighted = null;
  document.body.dataset.ready = "false";
  showInfo("");
  $("queue").hidden = true;

  const data = await api.request(EVENT_AND_MAP, { id: eventId });
  // The user may have picked another event while this one loaded.
  if ($("event").value !== eventId) return;
  const { event, seatMap, myHolds } = data;
  state.event = event;
  state.tiers = new Map(event.tiers.map((tier) => [tier.id, tier]));
  state.seats = new Map();
  state.layout = [];
  state.byLabel = new Map();
  const sections = [];
  for (const { section, available, seats } of seatMap.sections) {
    sections.push({ ...section, available });
    for (const seat of seats) {
      const placed = { ...seat, section: section.name };
      state.seats.set(seat.id, placed);
      state.layout.push(placed);
      state.byLabel.set(labelKey(section.name, seat.row, seat.number), placed);
    }
  }
  const live = myHolds.find((hold) => hold.event.id === eventId && hold.status === "ACTIVE");
  if (live) setHold(live);

  map.isSelected = (seat) => state.selected.has(seat.id);
  map.isMine = (seat) => state.owned.has(seat.id) || Boolean(state.hold?.seatIds.has(seat.id));
  map.load([...state.seats.values()], sections, event.tiers.map((tier) => tier.id));

  const when = new Date(event.startsAt).toLocaleString();
  $("event-info").textContent = `${event.venue.name}, ${event.venue.city} · ${when} · ` +
    `at most ${event.maxTicketsPerUser} tickets per buyer`;
  inspect(null);
  renderSelection();
  renderCounts();

  followSeats(eventId);
  followOrders(eventId);
  if (event.waitingRoomRequired) await enterQueue(eventId);
  document.body.dataset.ready = "true";
}

function labelKey(section, row, number) {
  return `${section}|${row}|${number}`.toLowerCase();
}

function followSeats(eventId) {
  let stop = () => {};
  const subscribe = () => {
    // graphql-ws sends this same payload object again when it reconnects, so keeping `since` at the
    // last applied sequence number makes a reconnect resume with exactly the missed changes.
    const payload = { query: SEAT_FEED, variables: { id: eventId, since: state.seq } };
    stop = ws.subscribe(payload, {
      next: ({ data, errors }) => {
        if (errors) return showError(errors);
        if (state.event?.id !== eventId) return;
        const update = data.seatMapChanged;
        if (update.kind === "DELTA" && state.seq !== null && update.previousSeq !== state.seq) {
          // A gap in the chain: subscribe again from what we have and the server fills it in.
          stop();
          subscribe();
          return;
        }
        applySeatUpdate(update);
        payload.variables.since = update.seq;
      },
      error: showError,
      complete: () => {},
    });
  };
  subscribe();
  state.stops.push(() => stop());
}

/** [position, letter] of every seat in a RUNS snapshot (`A9H2A`: 9 available, 2 held, 1 available). */
function* runPositions(runs) {
  let at = 0;
  for (const [, letter, count] of runs.matchAll(/([AHS])(\d*)/g)) {
    for (let n = count ? Number(count) : 1; n > 0; n -= 1) yield [at++, letter];
  }
}

/** [position, letter] of every changed seat of a delta (`0H17S`: the 1st seat held, the 18th sold). */
function* changedPositions(changes) {
  for (const [, at, letter] of changes.matchAll(/(\d+)([AHS])/g)) yield [Number(at), letter];
}

function applySeatUpdate(update) {
  const snapshot = update.kind === "SNAPSHOT";
  const changes = [...(snapshot ? runPositions(update.statuses) : changedPositions(update.statusChanges))];
  if (snapshot && changes.length !== state.layout.length) {
    // The layout changed since it was drawn: positions no longer line up, draw it again.
    openEvent(state.event.id).catch(showError);
    return;
  }
  const taken = [];
  for (const [at, letter] of changes) {
    const seat = state.layout[at];
    const status = STATUS[letter];
    if (!seat || !status) continue;
    seat.status = status;
    if (status !== "AVAILABLE" && state.selected.delete(seat.id)) taken.push(seat);
  }
  state.seq = update.seq;
  $("map").dataset.seq = String(update.seq);
  if (taken.length > 0) {
    state.holdKey = null;
    showInfo(`Just taken by someone else: ${taken.map(describeSeat).join(", ")}.`);
    renderSelection();
  }
  renderCounts();
  if (state.inspected) inspect(state.inspected);
  map.invalidate();
}

function followOrders(eventId) {
  const stop = ws.subscribe(
    { query: ORDER_FEED, variables: { id: eventId } },
    {
      next: ({ data, errors }) => {
        if (errors) return showError(errors);
        const { kind, hold } = data.orderUpdated;
        if (!hold || hold.id !== state.hold?.id) return;
        if (kind === "HOLD_EXPIRED" || kind === "HOLD_RELEASED") {
          setHold(null);
          showInfo(kind === "HOLD_EXPIRED" ? "Your hold expired; the seats are back on sale." : "Hold released.");
        } else if (kind === "HOLD_EXTENDED") {
          setHold(hold);
        }
      },
      error: showError,
      complete: () => {},
    },
  );
  state.stops.push(stop);
}

// ---------------------------------------------------------------------------------------------
// Waiting room

async function enterQueue(eventId) {
  $("queue").hidden = false;
  $("queue-text").textContent = "Joining the waiting room…";
  try {
    const { joinQueue } = await api.request(JOIN_QUEUE, { id: eventId });
    if (state.event?.id !== eventId) return;
    renderQueue(joinQueue);
  } catch (error) {
    showError(error);
    return;
  }
  const stop = ws.subscribe(
    { query: QUEUE_FEED, variables: { id: eventId } },
    {
      next: ({ data, errors }) => (errors ? showError(errors) : renderQueue(data.queuePosition)),
      error: showError,
      complete: () => {},
    },
  );
  state.stops.push(stop);
}

function renderQueue(ticket) {
  $("queue").dataset.status = ticket.status;
  state.queuePass = ticket.status === "ADMITTED" ? ticket.pass : null;
  const text = $("queue-text");
  switch (ticket.status) {
    case "WAITING":
      text.textContent = ticket.position === null
        ? `In the pre-queue: places are drawn at random at ${new Date(ticket.opensAt).toLocaleTimeString()}.`
        : `You are number ${ticket.position} in line, ${ticket.aheadOfYou ?? 0} ahead of you` +
          (ticket.estimatedWaitSeconds ? `, about ${ticket.estimatedWaitSeconds} s to go.` : ".");
      break;
    case "ADMITTED":
      text.textContent = `You're in: shop until ${new Date(ticket.passExpiresAt).toLocaleTimeString()}.`;
      break;
    case "EXPIRED":
      text.textContent = "Your pass ran out. Pick the event again to rejoin at the back.";
      break;
    default:
      text.textContent = "You left the waiting room.";
  }
}

// ---------------------------------------------------------------------------------------------
// Inspecting and selecting seats

function describeSeat(seat) {
  return `${seat.section} row ${seat.row} seat ${seat.number}`;
}

function inspect(seat) {
  state.inspected = seat;
  const info = $("seat-info");
  const toggle = $("toggle-seat");
  if (!seat) {
    info.dataset.seatId = "";
    info.dataset.status = "";
    info.textContent = "Point at a seat on the map, or find it by its label.";
    toggle.disabled = true;
    return;
  }
  const tier = state.tiers.get(seat.tierId);
  const [x, y] = map.toScreen(seat.x, seat.y);
  Object.assign(info.dataset, { seatId: seat.id, status: seat.status, x: x.toFixed(1), y: y.toFixed(1) });
  const mine = state.owned.has(seat.id) ? " (yours)" : state.hold?.seatIds.has(seat.id) ? " (held by you)" : "";
  info.textContent = `${describeSeat(seat)}${seat.accessible ? " ♿" : ""}: ${STATUS_TEXT[seat.status]}${mine}` +
    (tier ? ` · ${tier.name} ${money(tier.priceCents, tier.currency)}` : "");
  const selected = state.selected.has(seat.id);
  toggle.textContent = selected ? "Remove from selection" : "Add to selection";
  toggle.disabled = !selected && seat.status !== "AVAILABLE";
}

function toggleSeat(seat) {
  if (state.selected.has(seat.id)) {
    state.selected.delete(seat.id);
  } else if (seat.status === "AVAILABLE") {
    state.selected.add(seat.id);
  } else {
    return;
  }
  state.holdKey = null;
  renderSelection();
  inspect(seat);
  map.invalidate();
}

function renderSelection() {
  const seats = [...state.selected].map((id) => state.seats.get(id)).filter(Boolean);
  $("selection").replaceChildren(
    ...seats.map((seat) => {
      const item = document.createElement("li");
      item.dataset.seatId = seat.id;
      item.dataset.status = seat.status;
      const tier = state.tiers.get(seat.tierId);
      item.textContent = `${describeSeat(seat)}${tier ? ` · ${money(tier.priceCents, tier.currency)}` : ""}`;
      return item;
    }),
  );
  const total = seats.reduce((sum, seat) => sum + (state.tiers.get(seat.tierId)?.priceCents ?? 0), 0);
  const currency = state.event?.tiers[0]?.currency ?? "USD";
  $("total").textContent = seats.length ? `${seats.length} seat(s), ${money(total, currency)}` : "No seats selected.";
  $("hold").disabled = seats.length === 0;
  renderHold();
}

function renderHold() {
  const hold = state.hold;
  $("buy").disabled = !hold;
  $("release").disabled = !hold;
  $("hold-info").dataset.holdId = hold?.id ?? "";
  const currency = state.event?.tiers[0]?.currency ?? "USD";
  $("hold-info").textContent = hold
    ? `Holding ${hold.seatIds.size} seat(s) for ${money(hold.totalCents, currency)} until ` +
      `${new Date(hold.expiresAt).toLocaleTimeString()}.`
    : "";
}

function setHold(hold) {
  state.hold = hold && {
    id: hold.id,
    seatIds: new Set(hold.seats.map((seat) => seat.id)),
    expiresAt: hold.expiresAt,
    totalCents: hold.totalCents,
  };
  renderHold();
  map.invalidate();
}

function renderCounts() {
  const counts = { AVAILABLE: 0, HELD: 0, SOLD: 0 };
  const availableByTier = new Map();
  for (const seat of state.seats.values()) {
    counts[seat.status] += 1;
    if (seat.status === "AVAILABLE") availableByTier.set(seat.tierId, (availableByTier.get(seat.tierId) ?? 0) + 1);
  }
  const canvas = $("map");
  canvas.dataset.available = String(counts.AVAILABLE);
  canvas.dataset.held = String(counts.HELD);
  canvas.dataset.sold = String(counts.SOLD);
  $("counts").textContent = `${state.seats.size} seats: ${counts.AVAILABLE} available, ${counts.HELD} held, ` +
    `${counts.SOLD} sold${state.seq === null ? "" : ` · live at #${state.seq}`}`;

  const swatch = (colour, text) => {
    const item = document.createElement("li");
    const box = document.createElement("i");
    box.style.background = colour;
    item.append(box, text);
    return item;
  };
  const tiers = state.event?.tiers ?? [];
  $("legend").replaceChildren(
    ...tiers.map((tier, i) => {
      const free = tier.kind === "RESERVED" ? ` (${availableByTier.get(tier.id) ?? 0} free)` : " (standing)";
      return swatch(TIER_PALETTE[i % TIER_PALETTE.length], `${tier.name} ${money(tier.priceCents, tier.currency)}${free}`);
    }),
    swatch("#f2b705", "held"),
    swatch("#59606e", "sold"),
    swatch("#e8366d", "your selection"),
    swatch("#2457d6", "yours"),
  );
}

// ---------------------------------------------------------------------------------------------
// Hold, buy, release

async function holdSelected() {
  const seatIds = [...state.selected];
  if (!state.event || seatIds.length === 0) return;
  state.holdKey ??= newKey();
  const input = { eventId: state.event.id, seatIds, idempotencyKey: state.holdKey };
  if (state.queuePass) input.queuePass = state.queuePass;
  try {
    const { holdSeats } = await api.request(HOLD_SEATS, { input });
    state.holdKey = null;
    state.selected.clear();
    setHold(holdSeats);
    showInfo(`Held ${holdSeats.seats.length} seat(s). Buy before the hold expires.`);
  } catch (error) {
    if (error instanceof ApiError && error.code !== "NETWORK_ERROR") state.holdKey = null;
    for (const id of error.extensions?.unavailableSeatIds ?? []) state.selected.delete(id);
    showError(error);
  }
  renderSelection();
  if (state.inspected) inspect(state.inspected);
}

async function buy() {
  const hold = state.hold;
  if (!hold) return;
  state.buyKey ??= newKey();
  try {
    const { checkout } = await api.request(CHECKOUT, {
      input: { holdId: hold.id, paymentToken: PAYMENT_TOKEN, idempotencyKey: state.buyKey },
    });
    state.buyKey = null;
    for (const id of hold.seatIds) state.owned.add(id);
    setHold(null);
    $("message").dataset.orderId = checkout.id;
    showInfo(`Order confirmed: ${checkout.tickets.length} ticket(s), ${money(checkout.totalCents, checkout.currency)}.`);
  } catch (error) {
    if (error instanceof ApiError && error.code !== "NETWORK_ERROR") state.buyKey = null;
    // PAYMENT_DECLINED keeps the hold; HOLD_EXPIRED means it is gone.
    if (error.code === "HOLD_EXPIRED") setHold(null);
    showError(error);
  }
  if (state.inspected) inspect(state.inspected);
}

async function release() {
  const hold = state.hold;
  if (!hold) return;
  try {
    await api.request(RELEASE, { id: hold.id });
    setHold(null);
    showInfo("Hold released.");
  } catch (error) {
    showError(error);
  }
  if (state.inspected) inspect(state.inspected);
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  const canvas = $("map");
  canvas.addEventListener("pointermove", (event) => {
    const seat = map.seatAt(event.clientX, event.clientY);
    if (seat && seat !== state.inspected) inspect(seat);
  });
  canvas.addEventListener("click", (event) => {
    const seat = map.seatAt(event.clientX, event.clientY);
    if (seat) toggleSeat(seat);
  });
  $("toggle-seat").addEventListener("click", () => state.inspected && toggleSeat(state.inspected));
  $("find").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const seat = state.byLabel.get(labelKey(form.get("section").trim(), form.get("row").trim(), Number(form.get("number"))));
    if (!seat) {
      showInfo("No such seat at this event.");
      return;
    }
    map.highlighted = seat;
    map.invalidate();
    inspect(seat);
  });
  $("event").addEventListener("change", (event) => openEvent(event.target.value).catch(showError));
  $("hold").addEventListener("click", holdSelected);
  $("buy").addEventListener("click", buy);
  $("release").addEventListener("click", release);
}

async function start() {
  wire();
  try {
    await signIn(api, DEMO_EMAIL, DEMO_PASSWORD, (session) => {
      $("session").dataset.state = session ? "signed-in" : "signed-out";
      $("session").textContent = session ? `Signed in as ${session.user.name} (${session.user.email})` : "Signed out";
    });
    await loadEvents();
  } catch (error) {
    showError(error);
  }
}

start();
