"""Small sky charts for the burst page, as inline SVG computed here (no JavaScript, no CDN).

Two pictures of one burst:

* :func:`allsky_svg` — the whole sky in the Mollweide projection (equal-area, the usual
  all-sky map of GRB catalogues), RA increasing to the left with RA 180° on the central
  meridian, an RA/Dec grid, the Galactic plane faint in the background, and each position's
  error circle drawn as the projected small circle (so a 20° GBM circle near the pole looks as
  distorted as it is on the sky, and one crossing RA 0h is drawn on both edges).
* :func:`inset_svg` — a zoom on the best position in the gnomonic (tangent-plane)
  projection, north up and east left as on a finder chart, with a grid at a readable step and
  a scale bar; useful when the error is too small to see on the all-sky map.

Everything here is pure: numbers in, SVG text out. Text that reaches the SVG is escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

# -- spherical geometry ------------------------------------------------------------------


def unit(ra: float, dec: float) -> tuple[float, float, float]:
    """The unit vector of (ra, dec) in degrees."""
    r, d = math.radians(ra), math.radians(dec)
    return math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)


def radec(v: tuple[float, float, float]) -> tuple[float, float]:
    """(ra in [0, 360), dec) in degrees of a (not necessarily unit) vector."""
    x, y, z = v
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return (0.0 if ra >= 360.0 else ra), dec


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular distance in degrees (haversine: exact for small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def small_circle(ra: float, dec: float, radius: float, n: int = 120) -> list[tuple[float, float]]:
    """``n`` points (ra, dec) on the circle of ``radius`` degrees around (ra, dec), going
    round by position angle (north through east)."""
    c = unit(ra, dec)
    # A local frame at the centre: east and north unit vectors.
    r0 = math.radians(ra)
    east = (-math.sin(r0), math.cos(r0), 0.0)
    north = (c[1] * east[2] - c[2] * east[1], c[2] * east[0] - c[0] * east[2], c[0] * east[1] - c[1] * east[0])
    rho = math.radians(radius)
    cos_r, sin_r = math.cos(rho), math.sin(rho)
    points = []
    for i in range(n):
        pa = 2 * math.pi * i / n
        cn, ce = math.cos(pa), math.sin(pa)
        v = tuple(cos_r * c[k] + sin_r * (cn * north[k] + ce * east[k]) for k in range(3))
        points.append(radec(v))  # type: ignore[arg-type]
    return points


def _wrap180(angle: float) -> float:
    """An angle in degrees folded into (-180, 180]."""
    a = (angle + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a


# -- Mollweide ----------------------------------------------------------------------------

_SQRT2 = math.sqrt(2.0)


def _mollweide_theta(dec: float) -> float:
    """The auxiliary angle θ with 2θ + sin 2θ = π sin φ (Newton's method, a few steps)."""
    phi = math.radians(dec)
    if abs(abs(phi) - math.pi / 2) < 1e-12:
        return math.copysign(math.pi / 2, phi)
    target = math.pi * math.sin(phi)
    theta = phi
    for _ in range(50):
        f = 2 * theta + math.sin(2 * theta) - target
        df = 2 + 2 * math.cos(2 * theta)
        if df < 1e-15:
            break
        step = f / df
        theta -= step
        if abs(step) < 1e-12:
            break
    return theta


def mollweide(lon: float, dec: float) -> tuple[float, float]:
    """Mollweide (x, y) of a longitude (degrees from the central meridian, positive to the
    east, i.e. drawn to the left) and a declination. x in [-2√2, 2√2], y in [-√2, √2], y up.
    Longitudes beyond ±180° continue past the edge (used to draw both halves of a circle
    crossing the seam, then clipped)."""
    theta = _mollweide_theta(dec)
    x = -(2 * _SQRT2 / math.pi) * math.radians(lon) * math.cos(theta)
    y = _SQRT2 * math.sin(theta)
    return x, y


#: The all-sky map's central meridian (RA, degrees): 0h and 24h fall on the edges.
CENTRE_RA = 180.0


def allsky_xy(ra: float, dec: float) -> tuple[float, float]:
    """Mollweide (x, y) of a sky position on the all-sky map."""
    return mollweide(_wrap180(ra - CENTRE_RA), dec)


# -- SVG output --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """A position to draw: its error circle (``err`` degrees, may be None or 0) and a label.
    ``best`` marks the burst's adopted position (drawn on top, in the accent colour)."""

    ra: float
    dec: float
    err: float | None = None
    label: str = ""
    best: bool = False


def _num(value: float) -> str:
    text = f"{value:.2f}"
    return "0" if text in ("0.00", "-0.00") else text.rstrip("0").rstrip(".")


def _path(points: Sequence[tuple[float, float]], closed: bool) -> str:
    if not points:
        return ""
    head = f"M{_num(points[0][0])},{_num(points[0][1])}"
    body = "".join(f"L{_num(x)},{_num(y)}" for x, y in points[1:])
    return head + body + ("Z" if closed else "")


class _AllSky:
    """Coordinates of the all-sky picture: map units scaled to SVG pixels."""

    def __init__(self, width: float):
        self.width = width
        self.scale = (width - 8) / (4 * _SQRT2)
        self.height = 2 * _SQRT2 * self.scale + 8
        self.cx, self.cy = width / 2, self.height / 2

    def px(self, x: float, y: float) -> tuple[float, float]:
        return self.cx + x * self.scale, self.cy - y * self.scale

    def point(self, ra: float, dec: float) -> tuple[float, float]:
        return self.px(*allsky_xy(ra, dec))

    def line(self, coords: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        """Pixels of (lon, dec) pairs, lon relative to the central meridian (unwrapped)."""
        return [self.px(*mollweide(lon, dec)) for lon, dec in coords]


def _circle_paths(sky: _AllSky, m: Marker) -> list[str]:
    """SVG path data for an error circle on the all-sky map (one or more closed shapes,
    to be clipped by the map's outline)."""
    assert m.err is not None and m.err > 0
    radius = min(m.err, 180.0)
    if radius > 90.0:
        # Larger than a hemisphere: the region outside the antipode's circle. Drawn as the
        # whole sky plus the smaller circle, filled even-odd.
        outline = _outline_points(sky)
        inner = _circle_paths(sky, Marker((m.ra + 180.0) % 360.0, -m.dec, 180.0 - radius))
        return [_path(outline, True) + "".join(inner)]
    points = small_circle(m.ra, m.dec, radius, 180)
    north = 90.0 - m.dec < radius
    south = 90.0 + m.dec < radius
    if north or south:
        # A cap around a pole: its edge is one declination per longitude; close it over
        # the pole along the map's edge.
        pole = 90.0 if north else -90.0
        edge = sorted((_wrap180(ra - CENTRE_RA), dec) for ra, dec in points)
        coords = [(-180.0, edge[0][1]), *edge, (180.0, edge[-1][1])]
        coords += [(180.0, pole), (-180.0, pole)]
        return [_path(sky.line(coords), True)]
    # Unwrap longitudes around the centre's, so a circle over the seam stays one shape;
    # draw it again shifted by a full turn to show the part beyond the other edge.
    lon0 = _wrap180(m.ra - CENTRE_RA)
    coords = [(lon0 + _wrap180(ra - m.ra), dec) for ra, dec in points]
    paths = [_path(sky.line(coords), True)]
    low = min(lon for lon, _ in coords)
    high = max(lon for lon, _ in coords)
    if high > 180.0:
        paths.append(_path(sky.line([(lon - 360.0, dec) for lon, dec in coords]), True))
    if low < -180.0:
        paths.append(_path(sky.line([(lon + 360.0, dec) for lon, dec in coords]), True))
    return paths


def _outline_points(sky: _AllSky) -> list[tuple[float, float]]:
    right = [(-180.0, -90.0 + i) for i in range(0, 181, 3)]
    left = [(180.0, 90.0 - i) for i in range(0, 181, 3)]
    return sky.line(right + left)


#: The Galactic plane (l = 0..360, b = 0) in ICRS, for orientation on the all-sky map.
_GAL_POLE = (192.85948, 27.12825)
_GAL_CENTRE = (266.40510, -28.93617)


def galactic_plane(n: int = 180) -> list[tuple[float, float]]:
    """Points (ra, dec) along the Galactic equator: the great circle 90° from the Galactic pole."""
    return small_circle(*_GAL_POLE, 90.0, n)


def _split_at_seam(coords: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """Break a polyline of (lon, dec) where it jumps across the map's edge."""
    runs: list[list[tuple[float, float]]] = [[]]
    for lon, dec in coords:
        if runs[-1] and abs(lon - runs[-1][-1][0]) > 180.0:
            runs.append([])
        runs[-1].append((lon, dec))
    return [run for run in runs if len(run) > 1]


def allsky_svg(markers: Sequence[Marker], width: float = 360.0, title: str = "") -> str:
    """The all-sky Mollweide chart with each marker's error circle (or a dot when it has none).

    Sized by ``viewBox`` so CSS can make it fluid; ``title`` becomes the accessible name.
    """
    sky = _AllSky(width)
    w, h = sky.width, sky.height
    out = [
        f'<svg class="sky allsky" viewBox="0 0 {_num(w)} {_num(h)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title or "all-sky chart")}">',
        f"<title>{escape(title or 'All-sky chart (Mollweide, RA increasing to the left)')}</title>",
    ]
    outline = _path(_outline_points(sky), True)
    clip_id = "allsky-clip"
    out.append(f'<defs><clipPath id="{clip_id}"><path d="{outline}"/></clipPath></defs>')
    out.append(f'<path class="sky-bg" d="{outline}"/>')
    grid = []
    for dec in range(-60, 61, 30):
        grid.append(_path(sky.line([(lon, float(dec)) for lon in range(-180, 181, 5)]), False))
    for ra in range(0, 360, 30):
        lon = _wrap180(ra - CENTRE_RA)
        if abs(lon) == 180.0:
            continue  # the outline draws the seam
        grid.append(_path(sky.line([(lon, float(d)) for d in range(-90, 91, 3)]), False))
    out.append(f'<path class="sky-grid" d="{"".join(grid)}"/>')
    plane = [(_wrap180(ra - CENTRE_RA), dec) for ra, dec in galactic_plane()]
    plane.append(plane[0])
    plane_d = "".join(_path(sky.line(run), False) for run in _split_at_seam(plane))
    out.append(f'<path class="sky-galaxy" d="{plane_d}"/>')
    gc_x, gc_y = sky.point(*_GAL_CENTRE)
    out.append(f'<circle class="sky-galaxy-centre" cx="{_num(gc_x)}" cy="{_num(gc_y)}" r="2"/>')
    for hours in (0, 6, 12, 18):
        x, y = sky.point(hours * 15.0, 0.0)
        lon = _wrap180(hours * 15.0 - CENTRE_RA)
        anchor = "end" if lon >= 180.0 else ("start" if lon <= -180.0 else "middle")
        if hours == 0:  # on the seam: label both edges
            for ex, anchor_ in ((sky.px(*mollweide(180.0, 0.0))[0], "start"),
                                (sky.px(*mollweide(-180.0, 0.0))[0], "end")):  # fmt: skip
                out.append(f'<text class="sky-label" x="{_num(ex)}" y="{_num(y - 3)}" text-anchor="{anchor_}">0h</text>')
            continue
        out.append(f'<text class="sky-label" x="{_num(x)}" y="{_num(y - 3)}" text-anchor="{anchor}">{hours}h</text>')
    for dec in (-60, -30, 30, 60):
        x, y = sky.px(*mollweide(0.0, float(dec)))
        out.append(f'<text class="sky-label" x="{_num(x + 2)}" y="{_num(y - 2)}">{dec:+d}°</text>')
    ordered = sorted(markers, key=lambda m: m.best)  # the best one last, on top
    for m in ordered:
        cls = "sky-err best" if m.best else "sky-err"
        label = escape(m.label)
        if m.err is not None and m.err > 0:
            d = "".join(_circle_paths(sky, m))
            out.append(
                f'<path class="{cls}" d="{d}" fill-rule="evenodd" clip-path="url(#{clip_id})">'
                f"<title>{label}</title></path>"
            )
        x, y = sky.point(m.ra, m.dec)
        dot = "sky-dot best" if m.best else "sky-dot"
        out.append(f'<circle class="{dot}" cx="{_num(x)}" cy="{_num(y)}" r="{3 if m.best else 2}"><title>{label}</title></circle>')
    out.append(f'<path class="sky-outline" d="{outline}"/>')
    out.append("</svg>")
    return "".join(out)


# -- tangent-plane inset -----------------------------------------------------------------


def gnomonic(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float] | None:
    """Gnomonic (ξ, η) in degrees of (ra, dec) about (ra0, dec0): ξ towards east, η north.
    None for a point 90° or more from the centre (not on the tangent plane's side)."""
    a, d = math.radians(ra - ra0), math.radians(dec)
    d0 = math.radians(dec0)
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a)
    if cos_c <= 1e-9:
        return None
    xi = math.cos(d) * math.sin(a) / cos_c
    eta = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a)) / cos_c
    return math.degrees(xi), math.degrees(eta)


#: Grid steps the inset chooses from (degrees): 1", 2", 5", 10", 30", 1', 2', 5', 10', 30', 1°…
_STEPS = (1 / 3600, 2 / 3600, 5 / 3600, 10 / 3600, 30 / 3600, 1 / 60, 2 / 60, 5 / 60, 10 / 60,
          0.5, 1.0, 2.0, 5.0, 10.0)  # fmt: skip

#: Largest error (degrees) for which the inset is worth drawing: beyond it the all-sky map
#: shows the circle well and a tangent plane distorts too much.
INSET_MAX_ERR = 5.0


def angle_text(degrees: float) -> str:
    """A short angle: ``12"``, ``3.5'``, ``1.2°``."""
    if degrees < 1 / 60:
        return f'{degrees * 3600:.3g}"'
    if degrees < 1:
        return f"{degrees * 60:.3g}'"
    return f"{degrees:.3g}°"


def inset_svg(centre: Marker, others: Sequence[Marker] = (), size: float = 240.0) -> str | None:
    """A finder-chart zoom on ``centre`` (north up, east left), or None when its error is
    unknown or too large for a tangent plane to help."""
    if centre.err is None or not 0 < centre.err <= INSET_MAX_ERR:
        return None
    half = centre.err * 2.0  # the field shows the circle at half the width
    scale = (size / 2 - 4) / half

    def px(xi: float, eta: float) -> tuple[float, float]:
        return size / 2 - xi * scale, size / 2 - eta * scale

    step: float = next((s for s in _STEPS if half * 2 / s <= 6), _STEPS[-1])
    title = f"Zoom on RA {centre.ra:.4f}°, Dec {centre.dec:+.4f}° (field {angle_text(2 * half)}; north up, east left)"
    out = [
        f'<svg class="sky inset" viewBox="0 0 {_num(size)} {_num(size)}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<defs><clipPath id="inset-clip"><rect x="0" y="0" width="{_num(size)}" height="{_num(size)}"/></clipPath></defs>',
        f'<rect class="sky-bg" x="0" y="0" width="{_num(size)}" height="{_num(size)}"/>',
    ]
    grid: list[str] = []
    # Lines of constant Dec and RA through the field, at multiples of the step.
    dec_lo, dec_hi = centre.dec - half * 1.5, centre.dec + half * 1.5
    cos_d = max(math.cos(math.radians(centre.dec)), 1e-6)
    ra_half = min(180.0, half * 1.5 / cos_d)
    ra_step = step
    while ra_half * 2 / ra_step > 8:  # near a pole RA lines crowd: thin them
        ra_step *= 2
    k = math.ceil(dec_lo / step)
    while k * step <= dec_hi:
        dec = k * step
        if -90 < dec < 90:
            pts = [gnomonic(centre.ra + ra_half * (i / 20 - 1), dec, centre.ra, centre.dec) for i in range(41)]
            grid.append(_path([px(*p) for p in pts if p is not None], False))
        k += 1
    k = math.ceil((centre.ra - ra_half) / ra_step)
    while k * ra_step <= centre.ra + ra_half:
        ra = k * ra_step
        pts = [gnomonic(ra, max(-90.0, min(90.0, dec_lo + (dec_hi - dec_lo) * i / 20)), centre.ra, centre.dec) for i in range(21)]
        grid.append(_path([px(*p) for p in pts if p is not None], False))
        k += 1
    out.append(f'<path class="sky-grid" clip-path="url(#inset-clip)" d="{"".join(grid)}"/>')
    for m in [*[o for o in others if not o.best], centre]:
        if m.err is None or m.err <= 0:
            continue
        pts = [gnomonic(r, d, centre.ra, centre.dec) for r, d in small_circle(m.ra, m.dec, m.err, 120)]
        if any(p is None for p in pts):
            continue
        # Others only outlined: a wider circle would otherwise tint the whole field.
        cls = "sky-err best" if m is centre else "sky-err outline"
        out.append(
            f'<path class="{cls}" clip-path="url(#inset-clip)" d="{_path([px(*p) for p in pts if p], True)}">'
            f"<title>{escape(m.label)}</title></path>"
        )
    for m in [*[o for o in others if not o.best], centre]:
        p = gnomonic(m.ra, m.dec, centre.ra, centre.dec)
        if p is None:
            continue
        x, y = px(*p)
        if 0 <= x <= size and 0 <= y <= size:
            dot = "sky-dot best" if m is centre else "sky-dot"
            out.append(f'<circle class="{dot}" cx="{_num(x)}" cy="{_num(y)}" r="2.5"><title>{escape(m.label)}</title></circle>')
    # Compass (N up, E left) and a scale bar of one grid step.
    out.append(
        f'<text class="sky-label" x="{_num(size - 14)}" y="14" text-anchor="middle">N</text>'
        f'<text class="sky-label" x="{_num(size - 30)}" y="31" text-anchor="middle">E</text>'
        f'<path class="sky-compass" d="M{_num(size - 14)},30L{_num(size - 14)},18M{_num(size - 14)},30L{_num(size - 24)},30"/>'
    )
    bar = step * scale
    out.append(
        f'<path class="sky-scale" d="M8,{_num(size - 10)}L{_num(8 + bar)},{_num(size - 10)}"/>'
        f'<text class="sky-label" x="8" y="{_num(size - 14)}">{escape(angle_text(step))}</text>'
    )
    out.append("</svg>")
    return "".join(out)


# -- text ---------------------------------------------------------------------------------


def ra_hms(ra: float) -> str:
    """RA as ``hh:mm:ss.s``."""
    total = (ra % 360.0) / 15.0 * 3600.0
    total = round(total, 1) % 86400.0
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:04.1f}"


def dec_dms(dec: float) -> str:
    """Dec as ``±dd:mm:ss``."""
    sign = "-" if dec < 0 else "+"
    total = round(abs(dec) * 3600.0)
    d, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{sign}{int(d):02d}:{int(m):02d}:{int(s):02d}"


# -- the interactive view (Aladin Lite) -----------------------------------------------------
#
# On the notices and burst pages ``static/skyview.js`` replaces the SVG chart by CDS's Aladin
# Lite widget, with the same error circles over a real survey, when three things hold: the
# widget's code was vendored (``python -m burstbus.bridges.http.vendor``: served from our own
# ``/static/``, no CDN), the browser can run it (WebGL2), and the survey's tiles answer. Any of
# them missing, the SVG stays: it is in the HTML, drawn here.

ALADIN_DIR = Path(__file__).parent / "static" / "vendor" / "aladin"
ALADIN_ENTRY = "aladin.js"
#: The survey behind the circles (CDS's DSS2 colour HiPS), as a URL: no name resolution at
#: run time. Its ``properties`` file is what the page probes before showing the widget.
SURVEY = "https://alasky.cds.unistra.fr/DSS/DSS2Merged"
#: Where survey tiles and CDS's services live (the widget's images and requests).
CDS_ORIGINS = "https://*.unistra.fr https://*.u-strasbg.fr"
#: The pages' policy, widened for the widget only where it is served: WebAssembly compiled
#: from its inlined module (fetched as a ``data:`` URL), its injected stylesheet, its workers
#: and images from ``blob:``, survey tiles from CDS. Scripts still come from ``'self'`` only.
ALADIN_CSP = (
    f"default-src 'self'; img-src 'self' data: blob: {CDS_ORIGINS}; style-src 'self' 'unsafe-inline'; "
    f"script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' data: {CDS_ORIGINS}; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def aladin_version() -> str | None:
    """The vendored Aladin Lite's version, or None when it is not there (the SVG charts stay)."""
    if not (ALADIN_DIR / ALADIN_ENTRY).is_file():
        return None
    try:
        stamp = json.loads((ALADIN_DIR / "VERSION.json").read_text())
    except (OSError, ValueError):
        return "0"
    return str(stamp.get("version") or "0")


def view_markers(markers: Iterable[Marker]) -> str:
    """The circles as JSON for the widget (``<script type="application/json">``: data, not
    code; ``<`` escaped so no text can close the element)."""
    items = [{"ra": round(m.ra, 6), "dec": round(m.dec, 6), "err": m.err if m.err and m.err > 0 else None,
              "label": m.label[:200], "best": m.best} for m in markers]  # fmt: skip
    return json.dumps(items, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
