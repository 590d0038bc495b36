/* A small 2-D plot for eval's figures (src/eval/plot.c): axes with ticks,
 * labels and a title, polylines (solid or dashed), filled bands, bars and
 * points, a legend; drawn twice from the same list of primitives, as SVG
 * text and as an antialiased RGB raster saved as PNG.  Internal to eval. */
#ifndef FX_EVAL_PLOT_H
#define FX_EVAL_PLOT_H

#include <stdint.h>

#include "fxscreen/status.h"

typedef struct fx_plot fx_plot;

/* Axes [x0, x1] x [y0, y1]; the strings are copied. NULL when out of memory. */
fx_plot *fx_plot_create(const char *title, const char *xlabel, const char *ylabel, double x0,
                        double x1, double y0, double y1);

/* rgb: 0xRRGGBB.  legend NULL: not in the legend.  Data are copied. */
void fx_plot_line(fx_plot *p, const double *x, const double *y, int n, uint32_t rgb, int dashed,
                  const char *legend);
/* The area between lo and hi over x (a confidence band), alpha in (0, 1]. */
void fx_plot_band(fx_plot *p, const double *x, const double *lo, const double *hi, int n,
                  uint32_t rgb, double alpha, const char *legend);
/* Bars [edges[i], edges[i+1]) x [0, h[i]], alpha in (0, 1]. */
void fx_plot_bars(fx_plot *p, const double *edges, const double *h, int nbins, uint32_t rgb,
                  double alpha, const char *legend);
void fx_plot_point(fx_plot *p, double x, double y, uint32_t rgb, const char *legend);

/* Writes path.png (640 x 480) and path.svg.  FX_ERR_IO naming the file. */
fx_status fx_plot_save(const fx_plot *p, const char *path, fx_error *err);

void fx_plot_destroy(fx_plot *p);

#endif
