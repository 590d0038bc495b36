/* eval's plots (src/eval/plot.h): one list of primitives, drawn as SVG and
 * rasterised for PNG (coverage-antialiased lines and discs, scanline
 * polygons, DejaVu Sans glyphs from font_data.h). */
#include "eval/plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/font_data.h"
#include "fxscreen/loader.h"

#define PW 640
#define PH 480
#define ML 72 /* margins around the plot area */
#define MR 20
#define MT 36
#define MB 56

typedef enum { P_BAND, P_BARS, P_LINE, P_POINT } pkind;

typedef struct prim {
    pkind k;
    int n;
    double *x, *y, *y2; /* bars: x = edges (n + 1), y = heights; band: y = lo, y2 = hi */
    uint32_t rgb;
    double alpha;
    int dashed;
    char *legend;
} prim;

struct fx_plot {
    char *title, *xl, *yl;
    double x0, x1, y0, y1;
    prim *p;
    int np, cap, oom;
};

static char *dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

fx_plot *fx_plot_create(const char *title, const char *xlabel, const char *ylabel, double x0,
                        double x1, double y0, double y1)
{
    fx_plot *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->title = dup(title), p->xl = dup(xlabel), p->yl = dup(ylabel);
    p->x0 = x0, p->x1 = x1 > x0 ? x1 : x0 + 1, p->y0 = y0, p->y1 = y1 > y0 ? y1 : y0 + 1;
    if (!p->title || !p->xl || !p->yl) {
        fx_plot_destroy(p);
        return NULL;
    }
    return p;
}

void fx_plot_destroy(fx_plot *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->np; i++) {
        free(p->p[i].x), free(p->p[i].y), free(p->p[i].y2), free(p->p[i].legend);
    }
    free(p->p), free(p->title), free(p->xl), free(p->yl);
    free(p);
}

static double *copy(const double *v, int n)
{
    double *c = v ? malloc(sizeof *c * (size_t)(n > 0 ? n : 1)) : NULL;
    if (c)
        memcpy(c, v, sizeof *c * (size_t)n);
    return c;
}

static prim *add(fx_plot *p, pkind k, int n, uint32_t rgb, double alpha, const char *legend)
{
    if (p->np == p->cap) {
        int nc = p->cap ? 2 * p->cap : 8;
        prim *q = realloc(p->p, sizeof *q * (size_t)nc);
        if (!q) {
            p->oom = 1;
            return NULL;
        }
        p->p = q, p->cap = nc;
    }
    prim *r = &p->p[p->np++];
    *r = (prim){.k = k, .n = n, .rgb = rgb, .alpha = alpha, .legend = dup(legend)};
    return r;
}

void fx_plot_line(fx_plot *p, const double *x, const double *y, int n, uint32_t rgb, int dashed,
                  const char *legend)
{
    prim *r = add(p, P_LINE, n, rgb, 1.0, legend);
    if (r)
        r->x = copy(x, n), r->y = copy(y, n), r->dashed = dashed, p->oom |= !r->x || !r->y;
}

void fx_plot_band(fx_plot *p, const double *x, const double *lo, const double *hi, int n,
                  uint32_t rgb, double alpha, const char *legend)
{
    prim *r = add(p, P_BAND, n, rgb, alpha, legend);
    if (r)
        r->x = copy(x, n), r->y = copy(lo, n), r->y2 = copy(hi, n),
        p->oom |= !r->x || !r->y || !r->y2;
}

void fx_plot_bars(fx_plot *p, const double *edges, const double *h, int nbins, uint32_t rgb,
                  double alpha, const char *legend)
{
    prim *r = add(p, P_BARS, nbins, rgb, alpha, legend);
    if (r)
        r->x = copy(edges, nbins + 1), r->y = copy(h, nbins), p->oom |= !r->x || !r->y;
}

void fx_plot_point(fx_plot *p, double x, double y, uint32_t rgb, const char *legend)
{
    prim *r = add(p, P_POINT, 1, rgb, 1.0, legend);
    if (r)
        r->x = copy(&x, 1), r->y = copy(&y, 1), p->oom |= !r->x || !r->y;
}

/* ---- coordinates and ticks ---------------------------------------------------- */

static double X(const fx_plot *p, double x)
{
    return ML + (x - p->x0) / (p->x1 - p->x0) * (PW - ML - MR);
}

static double Y(const fx_plot *p, double y)
{
    return MT + (1.0 - (y - p->y0) / (p->y1 - p->y0)) * (PH - MT - MB);
}

/* A 1, 2 or 5 x 10^k step giving about five intervals over [a, b]. */
static double tick_step(double a, double b)
{
    double raw = (b - a) / 5.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* The tick values of axis ax (0 x, 1 y) into v, at most max; their count. */
static int ticks(const fx_plot *p, int ax, double *v, int max)
{
    double a = ax ? p->y0 : p->x0, b = ax ? p->y1 : p->x1, st = tick_step(a, b);
    int k = 0;
    for (double t = ceil(a / st - 1e-9) * st; t <= b + 1e-9 * st && k < max; t += st)
        v[k++] = fabs(t) < 1e-12 * st ? 0.0 : t;
    return k;
}

/* ---- SVG ---------------------------------------------------------------------- */

static void svg_text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

static void legend_box(const fx_plot *p, int *lx, int *ly, int *lw, int *lh);

static int write_svg(const fx_plot *p, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Verdana, sans-serif\" "
            "font-size=\"13\">\n<title>",
            PW, PH, PW, PH);
    svg_text(f, p->title);
    fprintf(f,
            "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n"
            "<clipPath id=\"area\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>"
            "</clipPath>\n<g clip-path=\"url(#area)\">\n",
            PW, PH, ML, MT, PW - ML - MR, PH - MT - MB);
    for (int i = 0; i < p->np; i++) {
        const prim *r = &p->p[i];
        if (r->k == P_BAND) {
            fprintf(f, "<polygon class=\"band\" fill=\"#%06x\" fill-opacity=\"%.2f\" points=\"",
                    r->rgb, r->alpha);
            for (int k = 0; k < r->n; k++)
                fprintf(f, "%.2f,%.2f ", X(p, r->x[k]), Y(p, r->y2[k]));
            for (int k = r->n - 1; k >= 0; k--)
                fprintf(f, "%.2f,%.2f ", X(p, r->x[k]), Y(p, r->y[k]));
            fputs("\"/>\n", f);
        } else if (r->k == P_BARS) {
            for (int k = 0; k < r->n; k++)
                fprintf(f,
                        "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                        "fill=\"#%06x\" fill-opacity=\"%.2f\"/>\n",
                        X(p, r->x[k]), Y(p, r->y[k]), X(p, r->x[k + 1]) - X(p, r->x[k]),
                        Y(p, p->y0) - Y(p, r->y[k]), r->rgb, r->alpha);
        } else if (r->k == P_LINE) {
            fprintf(f,
                    "<polyline class=\"line\" fill=\"none\" stroke=\"#%06x\" stroke-width=\"2\"%s "
                    "points=\"",
                    r->rgb, r->dashed ? " stroke-dasharray=\"6 4\"" : "");
            for (int k = 0; k < r->n; k++)
                fprintf(f, "%.2f,%.2f ", X(p, r->x[k]), Y(p, r->y[k]));
            fputs("\"/>\n", f);
        } else
            fprintf(f,
                    "<circle class=\"point\" cx=\"%.2f\" cy=\"%.2f\" r=\"5\" fill=\"#%06x\" "
                    "stroke=\"black\"/>\n",
                    X(p, r->x[0]), Y(p, r->y[0]), r->rgb);
    }
    fprintf(f,
            "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            ML, MT, PW - ML - MR, PH - MT - MB);
    for (int ax = 0; ax < 2; ax++) {
        double tv[32];
        for (int i = 0, nt = ticks(p, ax, tv, 32); i < nt; i++) {
            double v = tv[i];
            if (ax)
                fprintf(f,
                        "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\"/>"
                        "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%g</text>\n",
                        ML - 5, Y(p, v), ML, Y(p, v), ML - 8, Y(p, v) + 4, v);
            else
                fprintf(f,
                        "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>"
                        "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                        X(p, v), PH - MB, X(p, v), PH - MB + 5, X(p, v), PH - MB + 19, v);
        }
    }
    fprintf(f, "<text class=\"xlabel\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
            ML + (PW - ML - MR) / 2, PH - 14);
    svg_text(f, p->xl);
    fprintf(f,
            "</text>\n<text class=\"ylabel\" transform=\"translate(18,%d) rotate(-90)\" "
            "text-anchor=\"middle\">",
            MT + (PH - MT - MB) / 2);
    svg_text(f, p->yl);
    fprintf(f,
            "</text>\n<text class=\"title\" x=\"%d\" y=\"22\" text-anchor=\"middle\" "
            "font-size=\"15\">",
            PW / 2);
    svg_text(f, p->title);
    fputs("</text>\n", f);
    int lx, ly, lw, lh, row = 0;
    legend_box(p, &lx, &ly, &lw, &lh);
    if (lh > 0)
        fprintf(f,
                "<g class=\"legend\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                "fill=\"white\" stroke=\"#999999\"/>\n",
                lx, ly, lw, lh);
    for (int i = 0; i < p->np; i++) {
        const prim *r = &p->p[i];
        if (!r->legend)
            continue;
        int y = ly + 6 + row * 20;
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"18\" height=\"10\" fill=\"#%06x\" "
                "fill-opacity=\"%.2f\"/><text x=\"%d\" y=\"%d\">",
                lx + 6, y + 3, r->rgb, r->k == P_LINE || r->k == P_POINT ? 1.0 : r->alpha, lx + 30,
                y + 13);
        svg_text(f, r->legend);
        fputs("</text>\n", f);
        row++;
    }
    if (lh > 0)
        fputs("</g>\n", f);
    fputs("</svg>\n", f);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* ---- raster ------------------------------------------------------------------- */

typedef struct canvas {
    uint8_t *px;            /* PH x PW x 3 */
    int cx0, cy0, cx1, cy1; /* clip, half-open */
} canvas;

static void blend(canvas *c, int x, int y, uint32_t rgb, double a)
{
    if (x < c->cx0 || y < c->cy0 || x >= c->cx1 || y >= c->cy1 || a <= 0)
        return;
    a = a > 1 ? 1 : a;
    uint8_t *d = c->px + ((size_t)y * PW + (size_t)x) * 3;
    for (int k = 0; k < 3; k++) {
        double s = (double)((rgb >> (16 - 8 * k)) & 0xff);
        d[k] = (uint8_t)lround(d[k] + a * (s - d[k]));
    }
}

/* A segment of width w, coverage by distance (antialiased). */
static void seg(canvas *c, double x0, double y0, double x1, double y1, double w, uint32_t rgb)
{
    double r = w / 2 + 1, dx = x1 - x0, dy = y1 - y0, L2 = dx * dx + dy * dy;
    int ax = (int)floor(fmin(x0, x1) - r), bx = (int)ceil(fmax(x0, x1) + r);
    int ay = (int)floor(fmin(y0, y1) - r), by = (int)ceil(fmax(y0, y1) + r);
    for (int y = ay; y <= by; y++)
        for (int x = ax; x <= bx; x++) {
            double px = x + 0.5 - x0, py = y + 0.5 - y0;
            double t = L2 > 0 ? (px * dx + py * dy) / L2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy, d = sqrt(ex * ex + ey * ey);
            double cov = w / 2 + 0.5 - d;
            if (cov > 0) {
                /* Max with what this segment already drew there is not
                 * tracked: joints are drawn twice, a little darker. */
                blend(c, x, y, rgb, cov);
            }
        }
}

static void disc(canvas *c, double cx, double cy, double r, uint32_t rgb)
{
    for (int y = (int)floor(cy - r - 1); y <= (int)ceil(cy + r + 1); y++)
        for (int x = (int)floor(cx - r - 1); x <= (int)ceil(cx + r + 1); x++) {
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
            blend(c, x, y, rgb, r + 0.5 - d);
        }
}

/* A polygon filled by the even-odd rule at pixel centres. */
static void polygon(canvas *c, const double *vx, const double *vy, int n, uint32_t rgb, double a)
{
    double *xs = malloc(sizeof *xs * (size_t)(n + 1));
    if (!xs)
        return;
    for (int y = c->cy0; y < c->cy1; y++) {
        double sy = y + 0.5;
        int k = 0;
        for (int i = 0, j = n - 1; i < n; j = i++)
            if ((vy[i] > sy) != (vy[j] > sy))
                xs[k++] = vx[j] + (sy - vy[j]) / (vy[i] - vy[j]) * (vx[i] - vx[j]);
        for (int i = 1; i < k; i++) /* insertion sort: few crossings */
            for (int q = i; q > 0 && xs[q - 1] > xs[q]; q--) {
                double t = xs[q];
                xs[q] = xs[q - 1], xs[q - 1] = t;
            }
        for (int i = 0; i + 1 < k; i += 2)
            for (int x = (int)ceil(xs[i] - 0.5); x + 0.5 <= xs[i + 1]; x++)
                blend(c, x, y, rgb, a);
    }
    free(xs);
}

static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += *s >= 32 && *s < 127 ? fx_font_w[*s - 32] : 0;
    return w;
}

/* Text with its top-left at (x, y); rot: turned 90 degrees counterclockwise
 * (reading upwards), (x, y) then its bottom-left. */
static void text(canvas *c, int x, int y, const char *s, int rot)
{
    for (; *s; s++) {
        if (*s < 32 || *s >= 127)
            continue;
        int g = *s - 32, w = fx_font_w[g];
        const unsigned char *px = fx_font_px + fx_font_off[g];
        for (int gy = 0; gy < FX_FONT_PX_H; gy++)
            for (int gx = 0; gx < w; gx++) {
                double a = px[gy * w + gx] / 255.0;
                if (rot)
                    blend(c, x + gy, y - gx, 0, a);
                else
                    blend(c, x + gx, y + gy, 0, a);
            }
        if (rot)
            y -= w;
        else
            x += w;
    }
}

static void legend_box(const fx_plot *p, int *lx, int *ly, int *lw, int *lh)
{
    int rows = 0, w = 0;
    for (int i = 0; i < p->np; i++)
        if (p->p[i].legend) {
            rows++;
            int tw = text_width(p->p[i].legend);
            w = tw > w ? tw : w;
        }
    *lw = w + 40, *lh = rows ? rows * 20 + 8 : 0;
    /* The corner the data leave emptiest: fewest points of lines inside. */
    int best = 0, best_n = -1;
    for (int corner = 0; corner < 4; corner++) {
        int x = corner & 1 ? PW - MR - 8 - *lw : ML + 8;
        int y = corner & 2 ? MT + 8 : PH - MB - 8 - *lh, n = 0;
        for (int i = 0; i < p->np; i++) {
            const prim *r = &p->p[i];
            if (r->k == P_BAND)
                continue;
            for (int k = 0; k < r->n; k++) {
                /* Lines sampled along each segment, bars by their tops. */
                int steps = r->k == P_LINE && k + 1 < r->n ? 16 : 1;
                for (int q = 0; q < steps; q++) {
                    double u = (double)q / steps;
                    double vx = r->k == P_BARS ? (r->x[k] + r->x[k + 1]) / 2
                                : steps > 1    ? r->x[k] + u * (r->x[k + 1] - r->x[k])
                                               : r->x[k];
                    double vy = steps > 1 ? r->y[k] + u * (r->y[k + 1] - r->y[k]) : r->y[k];
                    double X0 = X(p, vx), Y0 = Y(p, vy);
                    n += X0 >= x && X0 <= x + *lw &&
                         (r->k == P_BARS ? Y0 <= y + *lh : Y0 >= y && Y0 <= y + *lh);
                }
            }
        }
        if (best_n < 0 || n < best_n)
            best = corner, best_n = n;
    }
    *lx = best & 1 ? PW - MR - 8 - *lw : ML + 8;
    *ly = best & 2 ? MT + 8 : PH - MB - 8 - *lh;
}

static int write_png(const fx_plot *p, const char *path, fx_error *err)
{
    canvas c = {malloc((size_t)PW * PH * 3), ML, MT, PW - MR, PH - MB};
    if (!c.px)
        return fx_error_set(err, FX_ERR_NOMEM, "plot: out of memory"), -1;
    memset(c.px, 255, (size_t)PW * PH * 3);
    for (int i = 0; i < p->np; i++) {
        const prim *r = &p->p[i];
        if (r->k == P_BAND) {
            double *vx = malloc(sizeof *vx * (size_t)(2 * r->n + 1)),
                   *vy = malloc(sizeof *vy * (size_t)(2 * r->n + 1));
            for (int k = 0; vx && vy && k < r->n; k++) {
                vx[k] = X(p, r->x[k]), vy[k] = Y(p, r->y2[k]);
                vx[2 * r->n - 1 - k] = X(p, r->x[k]), vy[2 * r->n - 1 - k] = Y(p, r->y[k]);
            }
            if (vx && vy)
                polygon(&c, vx, vy, 2 * r->n, r->rgb, r->alpha);
            free(vx), free(vy);
        } else if (r->k == P_BARS) {
            for (int k = 0; k < r->n; k++) {
                double vx[4] = {X(p, r->x[k]), X(p, r->x[k + 1]), X(p, r->x[k + 1]), X(p, r->x[k])};
                double vy[4] = {Y(p, p->y0), Y(p, p->y0), Y(p, r->y[k]), Y(p, r->y[k])};
                polygon(&c, vx, vy, 4, r->rgb, r->alpha);
            }
        } else if (r->k == P_LINE) {
            double done = 0; /* dash pattern 6 on, 4 off, along the path */
            for (int k = 0; k + 1 < r->n; k++) {
                double x0 = X(p, r->x[k]), y0 = Y(p, r->y[k]), x1 = X(p, r->x[k + 1]),
                       y1 = Y(p, r->y[k + 1]), L = hypot(x1 - x0, y1 - y0);
                if (!r->dashed) {
                    seg(&c, x0, y0, x1, y1, 2, r->rgb);
                    continue;
                }
                for (double s = 0; s < L;) {
                    double ph = fmod(done + s, 10.0), len = ph < 6 ? 6 - ph : 10 - ph;
                    len = fmin(len, L - s);
                    if (ph < 6)
                        seg(&c, x0 + (x1 - x0) * s / L, y0 + (y1 - y0) * s / L,
                            x0 + (x1 - x0) * (s + len) / L, y0 + (y1 - y0) * (s + len) / L, 2,
                            r->rgb);
                    s += len;
                }
                done += L;
            }
        } else {
            disc(&c, X(p, r->x[0]), Y(p, r->y[0]), 6, 0);
            disc(&c, X(p, r->x[0]), Y(p, r->y[0]), 5, r->rgb);
        }
    }
    c.cx0 = c.cy0 = 0, c.cx1 = PW, c.cy1 = PH;
    seg(&c, ML, MT, PW - MR, MT, 1, 0);
    seg(&c, ML, PH - MB, PW - MR, PH - MB, 1, 0);
    seg(&c, ML, MT, ML, PH - MB, 1, 0);
    seg(&c, PW - MR, MT, PW - MR, PH - MB, 1, 0);
    char lab[32];
    for (int ax = 0; ax < 2; ax++) {
        double tv[32];
        for (int i = 0, nt = ticks(p, ax, tv, 32); i < nt; i++) {
            double v = tv[i];
            snprintf(lab, sizeof lab, "%g", v);
            int tw = text_width(lab);
            if (ax) {
                seg(&c, ML - 5, Y(p, v), ML, Y(p, v), 1, 0);
                text(&c, ML - 8 - tw, (int)lround(Y(p, v)) - FX_FONT_PX_ASCENT / 2 - 2, lab, 0);
            } else {
                seg(&c, X(p, v), PH - MB, X(p, v), PH - MB + 5, 1, 0);
                text(&c, (int)lround(X(p, v)) - tw / 2, PH - MB + 7, lab, 0);
            }
        }
    }
    text(&c, ML + (PW - ML - MR) / 2 - text_width(p->xl) / 2, PH - 28, p->xl, 0);
    text(&c, 6, MT + (PH - MT - MB) / 2 + text_width(p->yl) / 2, p->yl, 1);
    text(&c, PW / 2 - text_width(p->title) / 2, 8, p->title, 0);
    int lx, ly, lw, lh, row = 0;
    legend_box(p, &lx, &ly, &lw, &lh);
    if (lh > 0) {
        double bx[4] = {lx, lx + lw, lx + lw, lx}, by[4] = {ly, ly, ly + lh, ly + lh};
        polygon(&c, bx, by, 4, 0xffffff, 1.0);
        for (int k = 0; k < 4; k++)
            seg(&c, bx[k], by[k], bx[(k + 1) % 4], by[(k + 1) % 4], 1, 0x999999);
    }
    for (int i = 0; i < p->np; i++) {
        const prim *r = &p->p[i];
        if (!r->legend)
            continue;
        int y = ly + 6 + row * 20;
        double sx[4] = {lx + 6, lx + 24, lx + 24, lx + 6}, sy[4] = {y + 3, y + 3, y + 13, y + 13};
        polygon(&c, sx, sy, 4, r->rgb, r->k == P_LINE || r->k == P_POINT ? 1.0 : r->alpha);
        text(&c, lx + 30, y, r->legend, 0);
        row++;
    }
    fx_status st = fx_png_save_rgb8(path, PW, PH, c.px, 6, err);
    free(c.px);
    return st == FX_OK ? 0 : -1;
}

fx_status fx_plot_save(const fx_plot *p, const char *path, fx_error *err)
{
    char file[4200];
    if (p->oom)
        return fx_error_set(err, FX_ERR_NOMEM, "plot %s: out of memory", path);
    snprintf(file, sizeof file, "%s.svg", path);
    if (write_svg(p, file) != 0)
        return fx_error_set(err, FX_ERR_IO, "%s: cannot write: %s", file, strerror(errno));
    snprintf(file, sizeof file, "%s.png", path);
    if (write_png(p, file, err) != 0)
        return err && err->code ? err->code : FX_ERR_IO;
    return FX_OK;
}
