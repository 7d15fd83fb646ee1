// Draws an event's seats on a canvas. Thousands of seats are drawn as one path per colour (status
// and tier), so a redraw is a handful of fill() calls however big the venue.

const STATUS_COLOURS = {
  HELD: "#f2b705",
  SOLD: "#59606e",
};
const SELECTED = "#e8366d";
const MINE = "#2457d6";
// Available seats take their tier's colour, in the event's tier order.
export const TIER_PALETTE = ["#2e9d57", "#11a3b5", "#8e5bd0", "#d9772b", "#6c9a1f", "#c2459b"];

export class SeatMap {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.seats = [];
    this.sections = [];
    this.labels = [];
    this.tierColour = new Map();
    this.bounds = { minX: 0, minY: 0, maxX: 1, maxY: 1 };
    this.scale = 1;
    this.offset = { x: 0, y: 0 };
    this.pending = false;
    // Selection and the viewer's own hold, drawn over the status colours.
    this.isSelected = () => false;
    this.isMine = () => false;
    this.highlighted = null;
    new ResizeObserver(() => this.layout()).observe(canvas);
  }

  /** Replaces what is drawn: `seats` carry x, y, status and tierId in venue units. */
  load(seats, sections, tierIds) {
    this.seats = seats;
    this.sections = sections;
    this.labels = sectionLabels(seats);
    this.tierColour = new Map(tierIds.map((id, i) => [id, TIER_PALETTE[i % TIER_PALETTE.length]]));
    const points = [...seats, ...sections];
    if (points.length === 0) {
      this.bounds = { minX: -1, minY: -1, maxX: 1, maxY: 1 };
    } else {
      this.bounds = {
        minX: Math.min(...points.map((p) => p.x)) - 2,
        minY: Math.min(...points.map((p) => p.y)) - 2,
        maxX: Math.max(...points.map((p) => p.x)) + 2,
        maxY: Math.max(...points.map((p) => p.y)) + 2,
      };
    }
    this.layout();
  }

  layout() {
    const ratio = window.devicePixelRatio || 1;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (width === 0 || height === 0) return;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const { minX, minY, maxX, maxY } = this.bounds;
    this.scale = Math.min(width / (maxX - minX), height / (maxY - minY));
    this.offset = {
      x: (width - (maxX - minX) * this.scale) / 2 - minX * this.scale,
      y: (height - (maxY - minY) * this.scale) / 2 - minY * this.scale,
    };
    this.draw();
  }

  /** Redraws at the next frame; many changes in one frame cost one redraw. */
  invalidate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  colourOf(seat) {
    if (this.isMine(seat)) return MINE;
    if (this.isSelected(seat)) return SELECTED;
    return STATUS_COLOURS[seat.status] ?? this.tierColour.get(seat.tierId) ?? "#2e9d57";
  }

  draw() {
    const { ctx, scale } = this;
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    ctx.clearRect(0, 0, width, height);

    const size = Math.max(1, scale * 0.8);
    const groups = new Map();
    for (const seat of this.seats) {
      const colour = this.colourOf(seat);
      let path = groups.get(colour);
      if (!path) {
        path = new Path2D();
        groups.set(colour, path);
      }
      const [px, py] = this.toScreen(seat.x, seat.y);
      path.rect(px - size / 2, py - size / 2, size, size);
    }
    for (const [colour, path] of groups) {
      ctx.fillStyle = colour;
      ctx.fill(path);
    }

    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.fillStyle = "rgb(255 255 255 / 0.85)";
    for (const { name, x, y } of this.labels) {
      const [px, py] = this.toScreen(x, y);
      const width = ctx.measureText(name).width + 6;
      ctx.fillRect(px - width / 2, py - 7, width, 14);
    }
    ctx.fillStyle = "#1d2433";
    for (const { name, x, y } of this.labels) {
      const [px, py] = this.toScreen(x, y);
      ctx.fillText(name, px, py);
    }
    ctx.font = "12px system-ui, sans-serif";
    for (const section of this.sections) {
      if (section.kind !== "GENERAL_ADMISSION") continue;
      const [px, py] = this.toScreen(section.x, section.y);
      ctx.fillText(`${section.name}: ${section.available} standing`, px, py);
    }

    if (this.highlighted) {
      const [px, py] = this.toScreen(this.highlighted.x, this.highlighted.y);
      ctx.strokeStyle = "#1d2433";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(px, py, Math.max(6, size * 1.6), 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  toScreen(x, y) {
    return [x * this.scale + this.offset.x, y * this.scale + this.offset.y];
  }

  /** The seat under a point in CSS pixels of the canvas, if any. */
  seatAt(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (clientX - rect.left - this.offset.x) / this.scale;
    const y = (clientY - rect.top - this.offset.y) / this.scale;
    // A linear scan of 16,000 seats takes well under a millisecond: no index needed.
    let best = null;
    let bestDistance = 0.7 * 0.7;
    for (const seat of this.seats) {
      const distance = (seat.x - x) ** 2 + (seat.y - y) ** 2;
      if (distance < bestDistance) {
        best = seat;
        bestDistance = distance;
      }
    }
    return best;
  }
}

/** A label per reserved section at the middle of its seats, so seats can be found by section. */
function sectionLabels(seats) {
  const sums = new Map();
  for (const seat of seats) {
    const sum = sums.get(seat.section) ?? { x: 0, y: 0, n: 0 };
    sum.x += seat.x;
    sum.y += seat.y;
    sum.n += 1;
    sums.set(seat.section, sum);
  }
  return [...sums].map(([name, { x, y, n }]) => ({ name, x: x / n, y: y / n }));
}
