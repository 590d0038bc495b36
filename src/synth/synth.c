/* Synthetic radiographs of long bones (see include/fxscreen/synth.h).
 *
 * Rendering is analytic: every object is a closed-form "path length through
 * the object" at a pixel (projected hollow cylinder for a bone, solid
 * cylinder for the limb), summed into an attenuation map D (units: 1/side,
 * so D is independent of the image size).  Each object is only evaluated in
 * the x-span its bounding capsule covers on a row.  Then D is blurred
 * (separable Gaussian, detector unsharpness), noise is added (quantum noise
 * grows behind dense objects), and a per-image tone curve (exposure, gamma)
 * maps D to stored values through a lookup table.
 *
 * Randomness: one xoshiro256** stream per image seeded by splitmix64 from
 * (seed, index) for the scene; per-pixel noise is a hash of (image key,
 * pixel index), so nothing depends on thread scheduling. */
#include "fxscreen/synth.h"

#include "fxscreen/fsutil.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fxscreen/loader.h"
#include "synth/font.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- random numbers ------------------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x)
{
    *x += 0x9E3779B97F4A7C15ull;
    return mix64(*x);
}

typedef struct rng {
    uint64_t s[4];
} rng;

static void rng_seed(rng *r, uint64_t seed, uint64_t index)
{
    uint64_t x = seed ^ mix64(index * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r) /* xoshiro256** */
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double uni(rng *r) /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double urange(rng *r, double a, double b)
{
    return a + (b - a) * uni(r);
}

static double usign(rng *r)
{
    return uni(r) < 0.5 ? -1.0 : 1.0;
}

/* Approximately N(0,1) from one hash: sum of four 16-bit uniforms (Irwin-
 * Hall); cheap and plenty for detector noise. */
static float hash_gauss(uint64_t key, uint64_t i)
{
    uint64_t h = mix64(key + i * 0x9E3779B97F4A7C15ull);
    int32_t s = (int32_t)(h & 0xffff) + (int32_t)((h >> 16) & 0xffff) +
                (int32_t)((h >> 32) & 0xffff) + (int32_t)(h >> 48) - 2 * 65535;
    return (float)s * (float)(1.0 / (65536.0 * 0.5773502691896258));
}

/* Smooth lattice value noise in [0,1), for trabecular texture. */
static double value_noise(uint64_t key, double u, double v)
{
    double fu = floor(u), fv = floor(v);
    int64_t iu = (int64_t)fu, iv = (int64_t)fv;
    double a = u - fu, b = v - fv;
    a = a * a * (3 - 2 * a);
    b = b * b * (3 - 2 * b);
    double c[4];
    for (int k = 0; k < 4; k++) {
        uint64_t h = mix64(key ^ ((uint64_t)(iu + (k & 1)) * 0x9E3779B97F4A7C15ull) ^
                           ((uint64_t)(iv + (k >> 1)) * 0xC2B2AE3D27D4EB4Full));
        c[k] = (double)(h >> 11) * 0x1.0p-53;
    }
    return (c[0] * (1 - a) + c[1] * a) * (1 - b) + (c[2] * (1 - a) + c[3] * a) * b;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- scene --------------------------------------------------------------- */

#define MAX_BONES 4

/* A long bone: axis from p0 along unit u, length len (px).  Outer radius
 * widens from rs (shaft) to re (ends) over elen at each end; rounded
 * elliptical caps of half-length cap beyond the axis ends. */
typedef struct bone {
    double p0x, p0y, ux, uy, len;
    double rs, re, elen, cap;
    double cs, ce;           /* cortical thickness, shaft and ends (px) */
    double mu_c, mu_m, mu_t; /* attenuation per side-length: cortex, marrow, trabecular */
    uint64_t tex_key;
    double tex_scale;        /* px per texture cell across the axis */
    int plate[2];            /* growth plate near end 0 / end 1 */
    double plate_pos[2], plate_w, plate_amp, plate_freq;
    int nutrient;            /* nutrient canal through one cortex */
    double nut_t, nut_side, nut_slope, nut_w;
} bone;

/* A fracture: line through (cx, cy) with unit normal n (towards the distal
 * fragment) and tangent t; the distal fragment is rotated by ang around the
 * centre and then shifted by (dx, dy). */
typedef struct fracture {
    int bone;
    double cx, cy, nx, ny, tx, ty;
    double gap, jag_amp, jag_f1, jag_f2, jag_p1, jag_p2;
    double cosa, sina, dx, dy;
    double fill0, fill_amp, fill_f; /* part of the gap still dense (hairline crack), along the line */
    int displaced;
} fracture;

typedef struct marker {
    int on;
    char text[3];
    double ox, oy, cosr, sinr; /* top-left corner and rotation of the holder */
    double cell;               /* px per font cell */
    double w, h;               /* holder size px */
    double mu_lead, mu_holder;
} marker;

typedef struct rect {
    int on;
    double cx, cy, cosr, sinr, hw, hh, mu;
} rect;

typedef struct shutter {
    int on;
    double nx, ny, off, mu; /* region n.p > off is collimated */
} shutter;

typedef struct scene {
    int size;
    double inv; /* 1/size: D is in units of side length */
    double bg, gx, gy;
    /* limb: soft-tissue cylinder along (lux, luy) through (lcx, lcy) */
    double lcx, lcy, lux, luy, lhalf, lrad, mu_soft, mu_muscle, muscle_frac;
    float *lrad_tab; /* radius along the limb axis, 1 entry per px of t */
    int lrad_n;
    int nbones;
    bone bones[MAX_BONES];
    int label;
    fracture fx;
    marker mk;
    rect rc;
    shutter sh[2];
    double blur_sigma; /* px */
    double k, off, gamma, noise_q, noise_e;
    uint64_t noise_key;
} scene;

static void sample_bone(rng *r, bone *b, double S, double cx, double cy, double ang, double len,
                        double rs)
{
    b->ux = cos(ang);
    b->uy = sin(ang);
    b->len = len;
    b->p0x = cx - b->ux * len / 2;
    b->p0y = cy - b->uy * len / 2;
    b->rs = rs;
    b->re = rs * urange(r, 1.5, 2.2);
    b->elen = len * urange(r, 0.12, 0.20);
    b->cap = b->re * urange(r, 0.7, 1.05);
    b->cs = rs * urange(r, 0.22, 0.38);
    b->ce = b->re * urange(r, 0.05, 0.10);
    b->mu_c = urange(r, 17, 24);
    b->mu_m = b->mu_c * urange(r, 0.10, 0.18);
    b->mu_t = b->mu_c * urange(r, 0.30, 0.45);
    b->tex_key = rng_next(r);
    b->tex_scale = S * urange(r, 0.003, 0.006);
    for (int e = 0; e < 2; e++) {
        b->plate[e] = uni(r) < 0.3;
        b->plate_pos[e] = b->elen * urange(r, 0.35, 0.7);
    }
    b->plate_w = S * urange(r, 0.0025, 0.006);
    b->plate_amp = rs * urange(r, 0.05, 0.2);
    b->plate_freq = urange(r, 1.0, 3.0) / rs;
    b->nutrient = uni(r) < 0.35;
    b->nut_t = len * urange(r, 0.3, 0.7);
    b->nut_side = usign(r);
    b->nut_slope = usign(r) * urange(r, 1.5, 3.5); /* along-axis run per unit depth */
    b->nut_w = S * urange(r, 0.0012, 0.0025);
}

static void sample_scene(rng *r, scene *sc, int size, double fracture_rate)
{
    const double S = size;
    sc->size = size;
    sc->inv = 1.0 / S;
    sc->label = uni(r) < fracture_rate;

    /* Background: air plus a faint table/cassette level and a heel-effect
     * gradient (one side slightly denser). */
    sc->bg = urange(r, 0.0, 0.06);
    double g = urange(r, 0.0, 0.10), ga = urange(r, 0, 2 * M_PI);
    sc->gx = g * cos(ga) / S;
    sc->gy = g * sin(ga) / S;

    /* Main bone near the centre at any angle. */
    double ang = urange(r, 0, M_PI);
    double bcx = S * (0.5 + urange(r, -0.12, 0.12)), bcy = S * (0.5 + urange(r, -0.12, 0.12));
    double rs0 = S * urange(r, 0.026, 0.045);
    double len0 = S * urange(r, 0.55, 0.90);
    sc->nbones = 1;
    sample_bone(r, &sc->bones[0], S, bcx, bcy, ang, len0, rs0);
    double lcx = bcx, lcy = bcy, extent = rs0;

    /* Optional paired bone (radius/ulna, tibia/fibula): thinner, nearly
     * parallel, beside the first. */
    int two = uni(r) < 0.5;
    double rs1 = rs0 * urange(r, 0.45, 0.75);
    double side = usign(r), sep = rs0 + rs1 + rs0 * urange(r, 0.4, 1.3);
    double ang1 = ang + urange(r, -0.07, 0.07), len1 = len0 * urange(r, 0.85, 1.0);
    double shift = len0 * urange(r, -0.06, 0.06);
    if (two) {
        double nx = -sin(ang), ny = cos(ang);
        double c1x = bcx + side * sep * nx + shift * cos(ang);
        double c1y = bcy + side * sep * ny + shift * sin(ang);
        sample_bone(r, &sc->bones[1], S, c1x, c1y, ang1, len1, rs1);
        sc->nbones = 2;
        lcx = (bcx + c1x) / 2;
        lcy = (bcy + c1y) / 2;
        extent = sep / 2 + rs0;
    }

    /* Soft-tissue envelope: crosses the whole image along the bones, with a
     * muscle core slightly denser than the subcutaneous fat. */
    sc->lcx = lcx;
    sc->lcy = lcy;
    double la = ang + urange(r, -0.05, 0.05);
    sc->lux = cos(la);
    sc->luy = sin(la);
    sc->lhalf = 1.6 * S;
    sc->lrad = extent * urange(r, 2.0, 3.2);
    sc->mu_soft = urange(r, 1.6, 2.4);
    sc->mu_muscle = sc->mu_soft * urange(r, 0.10, 0.25);
    sc->muscle_frac = urange(r, 0.7, 0.88);
    sc->lrad_n = (int)(2 * sc->lhalf) + 2;

    /* Fracture parameters are always drawn so that the rest of the stream
     * does not depend on the label. */
    fracture *f = &sc->fx;
    f->bone = (sc->nbones == 2 && uni(r) < 0.3) ? 1 : 0;
    const bone *fb = &sc->bones[f->bone];
    double tf = fb->len * urange(r, 0.28, 0.72);
    f->cx = fb->p0x + fb->ux * tf;
    f->cy = fb->p0y + fb->uy * tf;
    double obl = urange(r, -0.8, 0.8); /* transverse .. oblique (about 45 deg) */
    f->nx = fb->ux * cos(obl) - fb->uy * sin(obl);
    f->ny = fb->ux * sin(obl) + fb->uy * cos(obl);
    f->tx = -f->ny;
    f->ty = f->nx;
    /* 1.5 to 3.6 px at 512 px (0.8 to 1.8 px once the demo model's
     * preprocessing halves the image): thinner lines fall below what a
     * 256 px model can see once hairlines are partly filled. */
    f->gap = S * urange(r, 0.003, 0.007);
    if (f->gap < 1.0)
        f->gap = 1.0; /* below a pixel the line would vanish in the blur */
    f->jag_amp = f->gap * urange(r, 0.2, 0.6) + S * urange(r, 0.0, 0.0012);
    f->jag_f1 = urange(r, 2.0, 6.0) / fb->rs;
    f->jag_f2 = urange(r, 6.0, 14.0) / fb->rs;
    f->jag_p1 = urange(r, 0, 2 * M_PI);
    f->jag_p2 = urange(r, 0, 2 * M_PI);
    f->displaced = uni(r) < 0.5;
    double ang_f = f->displaced ? urange(r, -0.2, 0.2) : 0.0;
    double dperp = f->displaced ? fb->rs * urange(r, -0.6, 0.6) : 0.0;
    double dax = f->displaced ? fb->rs * urange(r, -0.15, 0.1) : 0.0;
    /* Hairline cracks are not empty: part of the bone still projects over
     * the gap, varying along the line, which keeps them subtle. */
    f->fill0 = f->displaced ? urange(r, 0.0, 0.15) : urange(r, 0.05, 0.3);
    f->fill_amp = urange(r, 0.0, 0.2);
    f->fill_f = urange(r, 2.0, 8.0) / fb->rs;
    f->cosa = cos(ang_f);
    f->sina = sin(ang_f);
    f->dx = dperp * -fb->uy + dax * fb->ux;
    f->dy = dperp * fb->ux + dax * fb->uy;

    /* Distractors, independent of the label. */
    marker *m = &sc->mk;
    m->on = uni(r) < 0.6;
    static const char *const texts[] = {"L", "R", "L", "R", "A", "P", "R1", "L2"};
    const char *txt = texts[rng_next(r) % 8];
    snprintf(m->text, sizeof m->text, "%s", txt);
    m->cell = S * urange(r, 0.006, 0.011);
    double rot = urange(r, -0.35, 0.35);
    m->cosr = cos(rot);
    m->sinr = sin(rot);
    int nch = (int)strlen(m->text);
    m->w = m->cell * (nch * (FX_FONT_W + 1) + 1);
    m->h = m->cell * (FX_FONT_H + 2);
    int corner = (int)(rng_next(r) % 4);
    double mx = S * urange(r, 0.04, 0.14), my = S * urange(r, 0.04, 0.14);
    m->ox = (corner & 1) ? S - mx - m->w : mx;
    m->oy = (corner & 2) ? S - my - m->h : my;
    m->mu_lead = urange(r, 4.0, 8.0);
    m->mu_holder = urange(r, 0.05, 0.2);

    rect *rc = &sc->rc;
    rc->on = uni(r) < 0.25;
    rc->cx = S * urange(r, 0.1, 0.9);
    rc->cy = S * urange(r, 0.1, 0.9);
    double rr = urange(r, 0, M_PI);
    rc->cosr = cos(rr);
    rc->sinr = sin(rr);
    rc->hw = S * urange(r, 0.02, 0.14);
    rc->hh = S * urange(r, 0.01, 0.05);
    rc->mu = urange(r, 0.5, 3.0);

    for (int i = 0; i < 2; i++) {
        shutter *sh = &sc->sh[i];
        sh->on = uni(r) < 0.2;
        double a = (double)(rng_next(r) % 4) * (M_PI / 2) + urange(r, -0.03, 0.03);
        sh->nx = cos(a);
        sh->ny = sin(a);
        /* n.p at the image centre plus the inset to the edge */
        sh->off = S * 0.5 * (sh->nx + sh->ny) + S * urange(r, 0.38, 0.47);
        sh->mu = urange(r, 0.8, 2.5);
    }

    /* Acquisition: unsharpness, tone curve, noise. */
    sc->blur_sigma = S * urange(r, 0.0003, 0.0007);
    if (sc->blur_sigma < 0.6)
        sc->blur_sigma = 0.6;
    sc->k = urange(r, 0.9, 1.6);
    sc->off = urange(r, 0.02, 0.10);
    sc->gamma = urange(r, 0.75, 1.35);
    sc->noise_q = urange(r, 0.004, 0.014);
    sc->noise_e = urange(r, 0.001, 0.004);
    sc->noise_key = rng_next(r);
}

/* Radius profile of the limb along its axis (bulge + taper), sampled per px. */
static void fill_limb_table(rng *r, scene *sc)
{
    double a1 = urange(r, 0.05, 0.15), l1 = sc->size * urange(r, 0.5, 1.2), p1 = urange(r, 0, 6.3);
    double a2 = urange(r, 0.01, 0.04), l2 = sc->size * urange(r, 0.3, 0.6), p2 = urange(r, 0, 6.3);
    double taper = urange(r, -0.15, 0.15) / sc->size;
    for (int i = 0; i < sc->lrad_n; i++) {
        double t = i - sc->lhalf;
        double f = 1 + a1 * sin(2 * M_PI * t / l1 + p1) + a2 * sin(2 * M_PI * t / l2 + p2) + taper * t;
        sc->lrad_tab[i] = (float)(sc->lrad * (f < 0.5 ? 0.5 : f));
    }
}

/* x-span [*xa, *xb] of row y that a capsule (segment a-b, radius rad) can
 * touch; returns 0 if none.  Conservative: the segment part within rad of the
 * row, widened by rad. */
static int capsule_span(double ax, double ay, double bx, double by, double rad, int y, int w,
                        int *xa, int *xb)
{
    double ylo = (ay < by ? ay : by) - rad, yhi = (ay > by ? ay : by) + rad;
    if (y < ylo || y > yhi)
        return 0;
    double t1 = 0, t2 = 1;
    if (fabs(by - ay) > 1e-9) {
        t1 = (y - rad - ay) / (by - ay);
        t2 = (y + rad - ay) / (by - ay);
        if (t1 > t2) {
            double tmp = t1;
            t1 = t2;
            t2 = tmp;
        }
        t1 = clampd(t1, 0, 1);
        t2 = clampd(t2, 0, 1);
    }
    double x1 = ax + (bx - ax) * t1, x2 = ax + (bx - ax) * t2;
    double lo = (x1 < x2 ? x1 : x2) - rad, hi = (x1 > x2 ? x1 : x2) + rad;
    if (hi < 0 || lo > w - 1)
        return 0;
    *xa = lo < 0 ? 0 : (int)floor(lo);
    *xb = hi > w - 1 ? w - 1 : (int)ceil(hi);
    return 1;
}

/* Attenuation of bone b at (x, y) (units 1/side times inv); *inside set to 1
 * when the point lies within the outer surface.  Projected hollow cylinder:
 * chord through the outer surface minus the canal, canal filled with marrow
 * in the shaft and textured trabecular bone towards the ends. */
static double bone_eval(const bone *b, double x, double y, double inv, int *inside)
{
    double dx = x - b->p0x, dy = y - b->p0y;
    double t = dx * b->ux + dy * b->uy;
    double ds = -dx * b->uy + dy * b->ux; /* signed distance from the axis */
    double d = fabs(ds);
    double tin = clampd(t, 0, b->len), te = t - tin;
    double de = tin < b->len - tin ? tin : b->len - tin;
    double w = clampd(1 - de / b->elen, 0, 1);
    w = w * w * (3 - 2 * w);
    double R = b->rs + (b->re - b->rs) * w;
    if (te != 0) {
        double q = te * R / b->cap;
        d = sqrt(d * d + q * q);
    }
    *inside = d < R;
    if (d >= R)
        return 0;
    double c = b->cs + (b->ce - b->cs) * w;
    double ri = R - c;
    double lo = 2 * sqrt(R * R - d * d);
    double li = d < ri ? 2 * sqrt(ri * ri - d * d) : 0;
    double mu_in = b->mu_m;
    if (w > 0 && li > 0) {
        /* trabecular bone: streaks along the axis (stress lines) */
        double u = t / (b->tex_scale * 3.0), v = ds / b->tex_scale;
        double n = 0.65 * value_noise(b->tex_key, u, v) + 0.35 * value_noise(b->tex_key + 1, 2.1 * u, 2.3 * v);
        mu_in += (b->mu_t * (0.55 + 0.9 * n) - b->mu_m) * w;
    }
    double cort = b->mu_c;
    if (b->nutrient && fabs(t - b->nut_t) < 4 * b->rs) {
        /* nutrient canal: a thin oblique lucent line through one cortex */
        double depth = b->nut_side * ds - ri;
        if (depth > -0.3 * c && depth < c) {
            double along = (t - b->nut_t) - b->nut_slope * depth;
            if (fabs(along) < b->nut_w / 2)
                cort *= 0.55;
        }
    }
    double val = cort * (lo - li) + mu_in * li;
    for (int e = 0; e < 2; e++) {
        if (!b->plate[e])
            continue;
        /* growth plate: wavy radiolucent band across the whole epiphysis */
        double tp = e == 0 ? b->plate_pos[e] : b->len - b->plate_pos[e];
        if (fabs(t - tp) > b->plate_amp + b->plate_w)
            continue; /* skip the sin() away from the plate */
        double off = t - tp - b->plate_amp * sin(b->plate_freq * ds);
        if (fabs(off) < b->plate_w) {
            double p = 1 - fabs(off) / b->plate_w;
            val *= 1 - 0.55 * p * p * (3 - 2 * p);
        }
    }
    return val * inv;
}

/* Signed distance to the fracture surface (jagged line) of point (x, y). */
static double frac_side(const fracture *f, double x, double y)
{
    double px = x - f->cx, py = y - f->cy;
    double s = px * f->nx + py * f->ny;
    if (fabs(s) > f->jag_amp * 3.0 + f->gap + 2)
        return s; /* far from the line the jag cannot change the side */
    double u = px * f->tx + py * f->ty;
    double jag = f->jag_amp * (sin(f->jag_f1 * u + f->jag_p1) - sin(f->jag_p1) +
                               0.5 * (sin(f->jag_f2 * u + f->jag_p2) - sin(f->jag_p2)));
    return s - jag;
}

/* Map an image point on the distal fragment back to the intact bone. */
static void distal_inverse(const fracture *f, double x, double y, double *ox, double *oy)
{
    double px = x - f->dx - f->cx, py = y - f->dy - f->cy;
    *ox = f->cx + f->cosa * px + f->sina * py;
    *oy = f->cy - f->sina * px + f->cosa * py;
}

static void distal_forward(const fracture *f, double x, double y, double *ox, double *oy)
{
    double px = x - f->cx, py = y - f->cy;
    *ox = f->cx + f->cosa * px - f->sina * py + f->dx;
    *oy = f->cy + f->sina * px + f->cosa * py + f->dy;
}

typedef struct span {
    int a, b; /* inclusive x range */
} span;

static void add_capsule_span(double ax, double ay, double bx, double by, double rad, int y, int w,
                             span *sp, int *n)
{
    int a, b;
    if (capsule_span(ax, ay, bx, by, rad, y, w, &a, &b))
        sp[(*n)++] = (span){a, b};
}

/* Disjoint sorted x-spans of row y that bone b can touch: a thin capsule
 * for the shaft and fat ones for the two ends, so that the shaft is not
 * evaluated over the width of the epiphyses.  With f, the spans of the
 * moved distal fragment are added.  sp holds up to 6; returns the count. */
static int bone_row_spans(const bone *b, const fracture *f, int y, int w, span *sp)
{
    int n = 0;
    for (int k = 0; k < (f ? 2 : 1); k++) {
        double ax = b->p0x, ay = b->p0y, ux = b->ux, uy = b->uy;
        if (k == 1) {
            double qx, qy;
            distal_forward(f, ax, ay, &ax, &ay);
            distal_forward(f, b->p0x + ux, b->p0y + uy, &qx, &qy);
            ux = qx - ax, uy = qy - ay;
        }
        double ex = ax + ux * b->len, ey = ay + uy * b->len;
        double re = (b->re > b->rs ? b->re : b->rs) + 1.5, rs = b->rs + 1.5;
        add_capsule_span(ax, ay, ex, ey, rs, y, w, sp, &n);
        add_capsule_span(ax - ux * b->cap, ay - uy * b->cap, ax + ux * b->elen, ay + uy * b->elen, re,
                         y, w, sp, &n);
        add_capsule_span(ex - ux * b->elen, ey - uy * b->elen, ex + ux * b->cap, ey + uy * b->cap, re,
                         y, w, sp, &n);
    }
    for (int i = 1; i < n; i++) /* insertion sort by start */
        for (int j = i; j > 0 && sp[j].a < sp[j - 1].a; j--) {
            span t = sp[j];
            sp[j] = sp[j - 1];
            sp[j - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && sp[i].a <= sp[m - 1].b + 1) {
            if (sp[i].b > sp[m - 1].b)
                sp[m - 1].b = sp[i].b;
        } else {
            sp[m++] = sp[i];
        }
    }
    return m;
}

typedef struct box {
    int x0, y0, x1, y1; /* inclusive; x0 > x1 when empty */
} box;

static void box_add(box *b, int x, int y)
{
    if (x < b->x0) b->x0 = x;
    if (x > b->x1) b->x1 = x;
    if (y < b->y0) b->y0 = y;
    if (y > b->y1) b->y1 = y;
}

/* One row of the fractured bone: proximal fragment where the point is beyond
 * the gap on the near side, distal fragment (moved) likewise on the far side;
 * pixels where either intact fragment was cut away form the truth box. */
static void fractured_row(const scene *sc, const bone *b, float *row, int y, box *tb)
{
    const fracture *f = &sc->fx;
    span sp[6];
    int ns = bone_row_spans(b, f, y, sc->size, sp);
    const double half = f->gap / 2;
    for (int k = 0; k < ns; k++) {
        for (int x = sp[k].a; x <= sp[k].b; x++) {
            int in_p, in_d;
            double s = frac_side(f, x, y);
            double vp = bone_eval(b, x, y, sc->inv, &in_p);
            double ox, oy;
            distal_inverse(f, x, y, &ox, &oy);
            double sd = frac_side(f, ox, oy);
            double vd = bone_eval(b, ox, oy, sc->inv, &in_d);
            /* coverage of the pixel by each fragment, anti-aliased over 1 px */
            double cp = clampd(-s - half + 0.5, 0, 1), cd = clampd(sd - half + 0.5, 0, 1);
            double rest = 1 - cp - cd;
            double fill = 0;
            if (rest > 0 && vp > 0) {
                double u = (x - f->cx) * f->tx + (y - f->cy) * f->ty;
                fill = rest * clampd(f->fill0 + f->fill_amp * sin(f->fill_f * u), 0, 0.8);
            }
            row[x] += (float)(cp * vp + cd * vd + fill * vp);
            if ((in_p && fabs(s) <= half + 0.5) || (in_d && fabs(sd) <= half + 0.5))
                box_add(tb, x, y);
        }
    }
}

static void limb_row(const scene *sc, float *row, int y)
{
    const int S = sc->size;
    double ax = sc->lcx - sc->lux * sc->lhalf, ay = sc->lcy - sc->luy * sc->lhalf;
    double bx = sc->lcx + sc->lux * sc->lhalf, by = sc->lcy + sc->luy * sc->lhalf;
    int xa, xb;
    if (!capsule_span(ax, ay, bx, by, sc->lrad * 1.7, y, S, &xa, &xb))
        return;
    const double mf2 = sc->muscle_frac * sc->muscle_frac;
    for (int x = xa; x <= xb; x++) {
        double dx = x - ax, dy = y - ay;
        double t = dx * sc->lux + dy * sc->luy;
        double d = -dx * sc->luy + dy * sc->lux;
        int ti = (int)t;
        if (ti < 0 || ti >= sc->lrad_n)
            continue;
        double R = sc->lrad_tab[ti];
        double r2 = R * R - d * d;
        if (r2 <= 0)
            continue;
        double v = sc->mu_soft * 2 * sqrt(r2);
        double m2 = mf2 * R * R - d * d;
        if (m2 > 0)
            v += sc->mu_muscle * 2 * sqrt(m2);
        row[x] += (float)(v * sc->inv);
    }
}

static void marker_row(const scene *sc, float *row, int y)
{
    const marker *m = &sc->mk;
    const int S = sc->size;
    /* axis-aligned bounds of the rotated holder */
    double xs[4], ys[4];
    for (int k = 0; k < 4; k++) {
        double u = (k & 1) ? m->w : 0, v = (k & 2) ? m->h : 0;
        xs[k] = m->ox + m->cosr * u - m->sinr * v;
        ys[k] = m->oy + m->sinr * u + m->cosr * v;
    }
    double xl = xs[0], xh = xs[0], yl = ys[0], yh = ys[0];
    for (int k = 1; k < 4; k++) {
        xl = fmin(xl, xs[k]), xh = fmax(xh, xs[k]);
        yl = fmin(yl, ys[k]), yh = fmax(yh, ys[k]);
    }
    if (y < yl || y > yh)
        return;
    int xa = (int)fmax(0, floor(xl)), xb = (int)fmin(S - 1, ceil(xh));
    int nch = (int)strlen(m->text);
    for (int x = xa; x <= xb; x++) {
        double px = x - m->ox, py = y - m->oy;
        double u = m->cosr * px + m->sinr * py, v = -m->sinr * px + m->cosr * py;
        if (u < 0 || v < 0 || u >= m->w || v >= m->h)
            continue;
        double val = m->mu_holder;
        int cu = (int)floor(u / m->cell) - 1, cv = (int)floor(v / m->cell) - 1;
        if (cu >= 0 && cv >= 0 && cv < FX_FONT_H) {
            int ch = cu / (FX_FONT_W + 1), col = cu % (FX_FONT_W + 1);
            if (ch < nch && col < FX_FONT_W) {
                const unsigned char *g = fx_font_glyph(m->text[ch]);
                if (g && (g[cv] >> (FX_FONT_W - 1 - col)) & 1)
                    val += m->mu_lead;
            }
        }
        row[x] += (float)val;
    }
}

static void rect_row(const scene *sc, float *row, int y)
{
    const rect *r = &sc->rc;
    double ext = fabs(r->cosr) * r->hh + fabs(r->sinr) * r->hw; /* half height of bounds */
    if (fabs(y - r->cy) > ext)
        return;
    double extx = fabs(r->cosr) * r->hw + fabs(r->sinr) * r->hh;
    int xa = (int)fmax(0, floor(r->cx - extx)), xb = (int)fmin(sc->size - 1, ceil(r->cx + extx));
    for (int x = xa; x <= xb; x++) {
        double px = x - r->cx, py = y - r->cy;
        double u = r->cosr * px + r->sinr * py, v = -r->sinr * px + r->cosr * py;
        if (fabs(u) <= r->hw && fabs(v) <= r->hh)
            row[x] += (float)r->mu;
    }
}

/* ---- blur ---------------------------------------------------------------- */

/* In-place separable Gaussian (edges replicated).  The vertical pass keeps a
 * ring of the original rows it still needs, so no second full-size buffer. */
static fx_status blur(float *img, int n, double sigma)
{
    int rad = (int)ceil(3 * sigma);
    if (rad < 1)
        return FX_OK;
    int taps = 2 * rad + 1;
    float *wts = malloc(sizeof(float) * (size_t)taps);
    float *pad = malloc(sizeof(float) * (size_t)(n + 2 * rad));
    float *ring = malloc(sizeof(float) * (size_t)n * (size_t)(rad + 1));
    float *acc = malloc(sizeof(float) * (size_t)n);
    if (!wts || !pad || !ring || !acc) {
        free(wts), free(pad), free(ring), free(acc);
        return FX_ERR_NOMEM;
    }
    double sum = 0;
    for (int k = -rad; k <= rad; k++)
        sum += exp(-0.5 * k * k / (sigma * sigma));
    for (int k = -rad; k <= rad; k++)
        wts[k + rad] = (float)(exp(-0.5 * k * k / (sigma * sigma)) / sum);

    for (int y = 0; y < n; y++) {
        float *row = img + (size_t)y * n;
        for (int i = 0; i < rad; i++) {
            pad[i] = row[0];
            pad[n + rad + i] = row[n - 1];
        }
        memcpy(pad + rad, row, sizeof(float) * (size_t)n);
        for (int x = 0; x < n; x++)
            row[x] = 0;
        for (int k = 0; k < taps; k++) {
            const float wk = wts[k];
            const float *restrict src = pad + k;
            float *restrict dst = row;
            /* omp simd: GCC's -O2 cost model would leave this scalar */
#pragma omp simd
            for (int x = 0; x < n; x++)
                dst[x] += wk * src[x];
        }
    }
    /* ring slot (y mod (rad+1)) holds the original of row y */
    for (int y = 0; y < n; y++) {
        float *row = img + (size_t)y * n;
        memcpy(ring + (size_t)(y % (rad + 1)) * n, row, sizeof(float) * (size_t)n);
        for (int x = 0; x < n; x++)
            acc[x] = 0;
        for (int k = -rad; k <= rad; k++) {
            int yy = y + k;
            yy = yy < 0 ? 0 : (yy > n - 1 ? n - 1 : yy);
            const float *restrict src =
                yy <= y ? ring + (size_t)(yy % (rad + 1)) * n : img + (size_t)yy * n;
            float *restrict dst = acc;
            const float wk = wts[k + rad];
#pragma omp simd
            for (int x = 0; x < n; x++)
                dst[x] += wk * src[x];
        }
        memcpy(row, acc, sizeof(float) * (size_t)n);
    }
    free(wts), free(pad), free(ring), free(acc);
    return FX_OK;
}

/* ---- public API ---------------------------------------------------------- */

void fx_synth_opts_default(fx_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n = 16;
    o->seed = 1;
    o->size = 512;
    o->bits = 8;
    o->format = FX_SYNTH_PNG;
    o->fracture_rate = 0.5;
    o->threads = 0;
}

fx_status fx_synth_opts_check(const fx_synth_opts *o, int need_dir, fx_error *err)
{
    if (!o)
        return fx_error_set(err, FX_ERR_USAGE, "synth: no options");
    if (need_dir && (!o->out_dir || !o->out_dir[0]))
        return fx_error_set(err, FX_ERR_USAGE, "synth: an output directory is required (--out DIR)");
    if (o->n < 1)
        return fx_error_set(err, FX_ERR_USAGE, "synth: n must be >= 1 (got %d)", o->n);
    if (o->size < FX_SYNTH_MIN_SIZE || o->size > FX_SYNTH_MAX_SIZE)
        return fx_error_set(err, FX_ERR_USAGE, "synth: size must be %d..%d px (got %d)",
                            FX_SYNTH_MIN_SIZE, FX_SYNTH_MAX_SIZE, o->size);
    if (o->bits != 8 && o->bits != 16)
        return fx_error_set(err, FX_ERR_USAGE, "synth: bits must be 8 or 16 (got %d)", o->bits);
    if (o->format != FX_SYNTH_PNG && o->format != FX_SYNTH_TIFF)
        return fx_error_set(err, FX_ERR_USAGE, "synth: format must be png or tiff");
    if (!(o->fracture_rate >= 0 && o->fracture_rate <= 1))
        return fx_error_set(err, FX_ERR_USAGE, "synth: fracture rate must be in 0..1 (got %g)",
                            o->fracture_rate);
    if (o->threads < 0 || o->threads > 1024)
        return fx_error_set(err, FX_ERR_USAGE, "synth: threads must be 0..1024 (got %d)", o->threads);
    return FX_OK;
}

#define LUT_N 4096
#define NOISE_TILE 65536 /* Gaussian samples per image; each row reads a random slice */
#define LUT_DMAX 8.0

fx_status fx_synth_render(const fx_synth_opts *o, uint64_t index, fx_image *img,
                          fx_synth_truth *truth, fx_error *err)
{
    fx_status st = fx_synth_opts_check(o, 0, err);
    if (st != FX_OK)
        return st;
    if (!img)
        return fx_error_set(err, FX_ERR_USAGE, "synth: no output image");
    memset(img, 0, sizeof *img);
    const int S = o->size;
    const size_t npix = (size_t)S * (size_t)S;

    rng r;
    rng_seed(&r, o->seed, index);
    scene sc;
    memset(&sc, 0, sizeof sc);
    sample_scene(&r, &sc, S, o->fracture_rate);

    float *D = malloc(sizeof(float) * npix);
    sc.lrad_tab = malloc(sizeof(float) * (size_t)sc.lrad_n);
    float *lut = malloc(sizeof(float) * (2 * (LUT_N + 1) + NOISE_TILE));
    void *out = malloc(npix * (o->bits == 16 ? 2 : 1));
    if (!D || !sc.lrad_tab || !lut || !out) {
        st = fx_error_set(err, FX_ERR_NOMEM, "synth: out of memory for a %d px image", S);
        goto fail;
    }
    fill_limb_table(&r, &sc);

    box tb = {S, S, -1, -1};
    for (int y = 0; y < S; y++) {
        float *row = D + (size_t)y * S;
        double base = sc.bg + sc.gx * (0 - S / 2.0) + sc.gy * (y - S / 2.0);
        for (int x = 0; x < S; x++)
            row[x] = (float)(base + sc.gx * x);
        for (int i = 0; i < 2; i++) {
            const shutter *sh = &sc.sh[i];
            if (!sh->on)
                continue;
            for (int x = 0; x < S; x++)
                if (sh->nx * x + sh->ny * y > sh->off)
                    row[x] += (float)sh->mu;
        }
        limb_row(&sc, row, y);
        for (int b = 0; b < sc.nbones; b++) {
            const bone *bn = &sc.bones[b];
            if (sc.label && b == sc.fx.bone) {
                fractured_row(&sc, bn, row, y, &tb);
                continue;
            }
            span sp[6];
            int ns = bone_row_spans(bn, NULL, y, S, sp), in;
            for (int k = 0; k < ns; k++)
                for (int x = sp[k].a; x <= sp[k].b; x++)
                    row[x] += (float)bone_eval(bn, x, y, sc.inv, &in);
        }
        if (sc.mk.on)
            marker_row(&sc, row, y);
        if (sc.rc.on)
            rect_row(&sc, row, y);
    }
    if (blur(D, S, sc.blur_sigma) != FX_OK) {
        st = fx_error_set(err, FX_ERR_NOMEM, "synth: out of memory for the blur");
        goto fail;
    }

    /* Tone curve and noise level tabulated over D: v = (1 - exp(-k (D+off)))^gamma
     * (log-like detector response with a soft shoulder), and quantum noise
     * (in D units) growing as exp(k D / 2) behind dense objects. */
    float *vt = lut, *nt = lut + LUT_N + 1;
    double v0 = pow(1 - exp(-sc.k * sc.off), sc.gamma) * 0.8;
    for (int i = 0; i <= LUT_N; i++) {
        double d = LUT_DMAX * i / LUT_N;
        double v = pow(1 - exp(-sc.k * (d + sc.off)), sc.gamma);
        vt[i] = (float)((v - v0) / (1 - v0));
        /* electronic noise (constant in v) expressed in D units via the slope */
        double slope = sc.gamma * pow(1 - exp(-sc.k * (d + sc.off)), sc.gamma - 1) * sc.k *
                       exp(-sc.k * (d + sc.off)) / (1 - v0);
        double qn = sc.noise_q * exp(0.5 * sc.k * fmin(d, 3.0));
        double en = sc.noise_e / fmax(slope, 0.05);
        nt[i] = (float)sqrt(qn * qn + en * en);
    }
    /* White noise from a per-image table of Gaussian samples, read from a
     * hashed offset per row: one load per pixel instead of one hash. */
    float *tile = lut + 2 * (LUT_N + 1);
    for (int i = 0; i < NOISE_TILE; i++)
        tile[i] = hash_gauss(sc.noise_key, (uint64_t)i);
    const float maxv = o->bits == 16 ? (float)FX_SYNTH_MAX_16BIT : 255.0f;
    const float scale = (float)(LUT_N / LUT_DMAX);
    for (int y = 0; y < S; y++) {
        const size_t off = (size_t)mix64(sc.noise_key ^ ((uint64_t)y * 0xC2B2AE3D27D4EB4Full + 7));
        const float *drow = D + (size_t)y * S;
        uint8_t *o8 = (uint8_t *)out + (size_t)y * S;
        uint16_t *o16 = (uint16_t *)out + (size_t)y * S;
        for (int x = 0; x < S; x++) {
            float d = drow[x];
            float fi = d * scale;
            int ii = fi <= 0 ? 0 : (fi >= LUT_N ? LUT_N : (int)fi);
            d += nt[ii] * tile[(off + (size_t)x) & (NOISE_TILE - 1)];
            fi = d * scale;
            fi = fi < 0 ? 0 : (fi > LUT_N - 0.001f ? LUT_N - 0.001f : fi);
            int j = (int)fi;
            float v = vt[j] + (fi - (float)j) * (vt[j + 1] - vt[j]);
            float q = v * maxv + 0.5f;
            q = q < 0 ? 0 : (q > maxv ? maxv : q);
            if (o->bits == 16)
                o16[x] = (uint16_t)q;
            else
                o8[x] = (uint8_t)q;
        }
    }

    img->info.width = img->info.height = S;
    img->info.channels = 1;
    img->info.bit_depth = o->bits;
    img->info.type = o->bits == 16 ? FX_PIX_U16 : FX_PIX_U8;
    img->pixels = out;
    img->owned = 1;
    out = NULL;

    if (truth) {
        memset(truth, 0, sizeof *truth);
        if (sc.label) {
            if (tb.x1 < tb.x0) {
                st = fx_error_set(err, FX_ERR_INTERNAL, "synth: fracture of image %llu not in view",
                                  (unsigned long long)index);
                fx_image_free(img);
                goto fail;
            }
            const bone *fb = &sc.bones[sc.fx.bone];
            /* Rendering samples pixel (x, y) at (x, y); the reported frame has
             * pixel centres at (x + 0.5, y + 0.5), so the pixel holding the
             * centre is round(c) here and floor(c + 0.5) there. */
            int pcx = (int)lround(sc.fx.cx), pcy = (int)lround(sc.fx.cy);
            if (pcx >= 0 && pcx < S && pcy >= 0 && pcy < S)
                box_add(&tb, pcx, pcy);
            truth->label = 1;
            truth->cx = sc.fx.cx + 0.5;
            truth->cy = sc.fx.cy + 0.5;
            truth->x0 = tb.x0;
            truth->y0 = tb.y0;
            truth->x1 = tb.x1 + 1;
            truth->y1 = tb.y1 + 1;
            truth->nx = sc.fx.nx;
            truth->ny = sc.fx.ny;
            truth->ax = fb->ux;
            truth->ay = fb->uy;
            truth->gap_px = sc.fx.gap;
            truth->jag_px = sc.fx.jag_amp * 3.0; /* bound of the two sines */
            truth->shaft_radius_px = fb->rs;
            truth->displaced = sc.fx.displaced;
        }
    }
    st = FX_OK;
fail:
    free(D);
    free(sc.lrad_tab);
    free(lut);
    free(out);
    return st;
}

fx_status fx_synth_run_ex(const fx_synth_opts *o, int *n_fractured, fx_error *err)
{
    fx_status st = fx_synth_opts_check(o, 1, err);
    if (st != FX_OK)
        return st;
    st = fx_mkdirs(o->out_dir, err);
    if (st != FX_OK)
        return st;
    const int n = o->n;
    fx_synth_truth *truths = calloc((size_t)n, sizeof *truths);
    fx_status *sts = calloc((size_t)n, sizeof *sts);
    fx_error *errs = calloc((size_t)n, sizeof *errs); /* detail of failed images only */
    if (!truths || !sts || !errs) {
        free(truths), free(sts), free(errs);
        return fx_error_set(err, FX_ERR_NOMEM, "synth: out of memory for %d labels", n);
    }
    const char *ext = o->format == FX_SYNTH_TIFF ? "tif" : "png";
    int nt = o->threads > 0 ? o->threads : omp_get_max_threads();
    if (nt > n)
        nt = n;
    int stop = 0; /* set once any image failed: the rest are skipped */

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int i = 0; i < n; i++) {
        int skip;
#pragma omp atomic read
        skip = stop;
        if (skip)
            continue;
        fx_image img;
        fx_error e = {0};
        fx_status s = fx_synth_render(o, (uint64_t)i, &img, &truths[i], &e);
        if (s == FX_OK) {
            char path[4200];
            snprintf(path, sizeof path, "%s/img_%06d.%s", o->out_dir, i, ext);
            s = o->format == FX_SYNTH_TIFF ? fx_tiff_save(path, &img, FX_TIFF_DEFLATE, &e)
                                           : fx_png_save(path, &img, &e);
            fx_image_free(&img);
        }
        if (s != FX_OK) {
            sts[i] = s;
            errs[i] = e;
#pragma omp atomic write
            stop = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (sts[i] != FX_OK) {
            st = fx_error_set(err, sts[i], "%s", errs[i].msg);
            goto done;
        }
    }

    {
        char tmp[4200], fin[4200];
        snprintf(tmp, sizeof tmp, "%s/labels.csv.tmp", o->out_dir);
        snprintf(fin, sizeof fin, "%s/labels.csv", o->out_dir);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            st = fx_error_set(err, FX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
            goto done;
        }
        int k = 0;
        fprintf(f, "path,label,cx,cy,x0,y0,x1,y1\n");
        for (int i = 0; i < n; i++) {
            const fx_synth_truth *t = &truths[i];
            if (t->label) {
                k++;
                fprintf(f, "img_%06d.%s,1,%.1f,%.1f,%d,%d,%d,%d\n", i, ext, t->cx, t->cy, t->x0,
                        t->y0, t->x1, t->y1);
            } else {
                fprintf(f, "img_%06d.%s,0,,,,,,\n", i, ext);
            }
        }
        int bad = ferror(f);
        if (fclose(f) != 0 || bad || rename(tmp, fin) != 0) {
            st = fx_error_set(err, FX_ERR_IO, "%s: write failed: %s", fin, strerror(errno));
            remove(tmp);
            goto done;
        }
        if (n_fractured)
            *n_fractured = k;
    }
done:
    free(truths), free(sts), free(errs);
    return st;
}

fx_status fx_synth_run(const fx_synth_opts *o, fx_error *err)
{
    return fx_synth_run_ex(o, NULL, err);
}
