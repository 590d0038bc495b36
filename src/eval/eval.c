/* The `fxscreen eval` job: join summary.csv to labels.csv, compute the
 * statistics (metrics.c), write eval.json, print a table.  See
 * include/fxscreen/eval.h for the contract. */
#include <cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval_internal.h"
#include "fxscreen/eval.h"
#include "fxscreen/fsutil.h"
#include "fxscreen/h5util.h"

#define MAX_COLS 64

/* One labels.csv row. */
typedef struct label_row {
    char *real;       /* realpath of the labelled image; NULL when it does not resolve */
    const char *base; /* basename, inside `path` */
    char *path;       /* as joined: labels dir + relative path */
    int label;        /* 0 / 1 */
    int has_box;
    double x0, y0, x1, y1;
    char *group; /* its --group-by value when labels.csv has that column */
    int seen;    /* some summary row (ok or error) matched it */
    int taken;   /* an ok row was evaluated against it */
} label_row;

/* Everything the job allocates, freed in one place. */
typedef struct eval_state {
    label_row *lab;
    size_t nlab, caplab;
    size_t *by_real, nreal; /* label indices sorted by realpath (resolved ones only) */
    size_t *by_base;        /* label indices sorted by basename (all) */
    double *score;
    int *truth;
    size_t *lab_of; /* the label row of each evaluated row */
    char **grp;     /* its --group-by value (owned), when asked */
    size_t n, cap;
    const char *group_by; /* NULL: no subgroups */
    int group_in_labels;  /* the column is labels.csv's (else summary.csv's) */
    char *rec;
    size_t rec_cap;
    FILE *f;
} eval_state;

static void state_free(eval_state *s)
{
    for (size_t i = 0; i < s->nlab; i++) {
        free(s->lab[i].real);
        free(s->lab[i].path);
        free(s->lab[i].group);
    }
    for (size_t i = 0; s->grp && i < s->n; i++)
        free(s->grp[i]);
    free(s->grp);
    free(s->lab_of);
    free(s->lab);
    free(s->by_real);
    free(s->by_base);
    free(s->score);
    free(s->truth);
    free(s->rec);
    if (s->f)
        fclose(s->f);
    memset(s, 0, sizeof *s);
}

/* ---- small parsers ------------------------------------------------------- */

/* Whole-string finite double. Returns 1 and sets *v, else 0. */
static int parse_double(const char *t, double *v)
{
    char *end;
    if (!*t)
        return 0;
    errno = 0;
    double x = strtod(t, &end);
    while (*end == ' ')
        end++;
    if (end == t || *end || errno == ERANGE || !isfinite(x))
        return 0;
    *v = x;
    return 1;
}

/* "0" or "1" (surrounding spaces allowed). Returns 0/1, or -1. */
static int parse_bit(const char *t)
{
    double v;
    if (!parse_double(t, &v) || (v != 0.0 && v != 1.0))
        return -1;
    return (int)v;
}

static int find_col(char **names, int n, const char *want)
{
    for (int k = 0; k < n; k++)
        if (strcmp(names[k], want) == 0)
            return k;
    return -1;
}

static const char *field(char **f, int nf, int col)
{
    return col >= 0 && col < nf ? f[col] : "";
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Read the header record of s->f into cols (pointing into s->rec). Returns
 * the column count, 0 for an empty file, -1 on a read error. */
static int read_header(eval_state *s, char **cols, long *line)
{
    int r = fx_csv_read_record(s->f, &s->rec, &s->rec_cap, line);
    if (r <= 0)
        return r;
    char *h = s->rec;
    if ((unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB && (unsigned char)h[2] == 0xBF)
        h += 3; /* UTF-8 byte-order mark */
    return fx_csv_split(h, cols, MAX_COLS);
}

/* ---- labels -------------------------------------------------------------- */

static int cmp_real(const void *a, const void *b, void *ctx)
{
    const label_row *L = ctx;
    return strcmp(L[*(const size_t *)a].real, L[*(const size_t *)b].real);
}

static int cmp_base(const void *a, const void *b, void *ctx)
{
    const label_row *L = ctx;
    return strcmp(L[*(const size_t *)a].base, L[*(const size_t *)b].base);
}

/* Next non-blank CSV record split into f[]: its field count, 0 at the end,
 * -1 on a read error (errno set).  *at is the record's first line number. */
static int next_record(eval_state *s, long *line, long *at, char **f)
{
    for (;;) {
        *at = *line + 1;
        int r = fx_csv_read_record(s->f, &s->rec, &s->rec_cap, line);
        if (r <= 0)
            return r < 0 ? -1 : 0;
        int nf = fx_csv_split(s->rec, f, MAX_COLS);
        if (!(nf == 1 && f[0][0] == '\0'))
            return nf;
    }
}

static fx_status read_labels(eval_state *s, const char *path, fx_error *err)
{
    s->f = fopen(path, "r");
    if (!s->f)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: cannot open labels file: %s (give --labels "
                            "the labels.csv written by `fxscreen synth` or in its format)",
                            path, strerror(errno));
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0; /* keeps the '/' */
    char *cols[MAX_COLS];
    long line = 0;
    int nc = read_header(s, cols, &line);
    if (nc < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    int cp = find_col(cols, nc, "path"), cl = find_col(cols, nc, "label");
    int cx0 = find_col(cols, nc, "x0"), cy0 = find_col(cols, nc, "y0");
    int cx1 = find_col(cols, nc, "x1"), cy1 = find_col(cols, nc, "y1");
    if (cp < 0 || cl < 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: header needs 'path' and 'label' columns "
                            "(labels.csv format: path,label,cx,cy,x0,y0,x1,y1)",
                            path);
    int boxcols = cx0 >= 0 && cy0 >= 0 && cx1 >= 0 && cy1 >= 0;
    int cg = s->group_by ? find_col(cols, nc, s->group_by) : -1;
    s->group_in_labels = cg >= 0;
    for (;;) {
        long at;
        char *f[MAX_COLS];
        int nf = next_record(s, &line, &at, f);
        if (nf < 0)
            return fx_error_set(err, FX_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (nf == 0)
            break;
        const char *rel = field(f, nf, cp);
        if (!*rel)
            return fx_error_set(err, FX_ERR_FORMAT, "%s: line %ld: empty path", path, at);
        int lab = parse_bit(field(f, nf, cl));
        if (lab < 0)
            return fx_error_set(err, FX_ERR_FORMAT, "%s: line %ld: label '%s' is not 0 or 1", path,
                                at, field(f, nf, cl));
        label_row L = {.label = lab};
        if (cg >= 0 && !(L.group = strdup(field(f, nf, cg))))
            return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
        if (boxcols) {
            const char *b[4] = {field(f, nf, cx0), field(f, nf, cy0), field(f, nf, cx1),
                                field(f, nf, cy1)};
            int empty = !*b[0] && !*b[1] && !*b[2] && !*b[3];
            if (!empty) {
                if (!parse_double(b[0], &L.x0) || !parse_double(b[1], &L.y0) ||
                    !parse_double(b[2], &L.x1) || !parse_double(b[3], &L.y1))
                    return fx_error_set(err, FX_ERR_FORMAT,
                                        "%s: line %ld: box '%s,%s,%s,%s' "
                                        "needs four numbers x0,y0,x1,y1 or four empty fields",
                                        path, at, b[0], b[1], b[2], b[3]);
                L.has_box = 1;
            }
        }
        size_t rl = strlen(rel), dl = rel[0] == '/' ? 0 : dirlen;
        if (!(L.path = malloc(dl + rl + 1)))
            return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
        memcpy(L.path, path, dl);
        memcpy(L.path + dl, rel, rl + 1);
        L.base = base_of(L.path);
        L.real = realpath(L.path, NULL); /* NULL: file absent here; basename fallback */
        if (s->nlab == s->caplab) {
            size_t nc2 = s->caplab ? s->caplab * 2 : 256;
            label_row *nl = realloc(s->lab, nc2 * sizeof *nl);
            if (!nl) {
                free(L.path);
                free(L.real);
                free(L.group);
                return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
            }
            s->lab = nl;
            s->caplab = nc2;
        }
        s->lab[s->nlab++] = L;
    }
    fclose(s->f);
    s->f = NULL;
    /* indices for the join */
    size_t nl = s->nlab ? s->nlab : 1;
    s->by_real = malloc(nl * sizeof *s->by_real);
    s->by_base = malloc(nl * sizeof *s->by_base);
    if (!s->by_real || !s->by_base)
        return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < s->nlab; i++) {
        s->by_base[i] = i;
        if (s->lab[i].real)
            s->by_real[s->nreal++] = i;
    }
    qsort_r(s->by_real, s->nreal, sizeof(size_t), cmp_real, s->lab);
    qsort_r(s->by_base, s->nlab, sizeof(size_t), cmp_base, s->lab);
    return FX_OK;
}

/* Label index for a summary path, or -1. *by_base set when the basename
 * fallback found it. */
static long lookup(const eval_state *s, const char *path, int *by_base)
{
    *by_base = 0;
    char *rp = realpath(path, NULL);
    if (rp) {
        size_t lo = 0, hi = s->nreal;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(s->lab[s->by_real[mid]].real, rp);
            if (c == 0) {
                free(rp);
                return (long)s->by_real[mid];
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        free(rp);
    }
    const char *b = base_of(path);
    size_t lo = 0, hi = s->nlab;
    while (lo < hi) { /* lower bound */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->lab[s->by_base[mid]].base, b) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->nlab && strcmp(s->lab[s->by_base[lo]].base, b) == 0 &&
        (lo + 1 == s->nlab || strcmp(s->lab[s->by_base[lo + 1]].base, b) != 0)) {
        *by_base = 1;
        return (long)s->by_base[lo];
    }
    return -1;
}

/* ---- threshold ----------------------------------------------------------- */

static fx_status read_h5_threshold(const char *path, double *thr, fx_error *err)
{
    fx_status st = FX_OK;
    hid_t f = -1, a = -1, sp = -1, ty = -1;
    H5E_BEGIN_TRY
    {
        f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            st = fx_error_set(err, FX_ERR_FORMAT,
                              "%s: cannot open as HDF5 (pass --threshold T "
                              "to evaluate without it)",
                              path);
        } else if (H5Aexists(f, "threshold") <= 0 ||
                   (a = H5Aopen(f, "threshold", H5P_DEFAULT)) < 0) {
            st = fx_error_set(err, FX_ERR_FORMAT,
                              "%s: no root attribute 'threshold' (pass "
                              "--threshold T)",
                              path);
        } else {
            sp = H5Aget_space(a);
            ty = H5Aget_type(a);
            H5T_class_t cls = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
            hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
            double v = NAN;
            if ((cls != H5T_FLOAT && cls != H5T_INTEGER) || np != 1 ||
                H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0 || !isfinite(v))
                st = fx_error_set(err, FX_ERR_FORMAT,
                                  "%s: attribute 'threshold' is not one "
                                  "finite number (pass --threshold T)",
                                  path);
            else
                *thr = v;
        }
        if (ty >= 0)
            H5Tclose(ty);
        if (sp >= 0)
            H5Sclose(sp);
        if (a >= 0)
            H5Aclose(a);
        if (f >= 0)
            H5Fclose(f);
    }
    H5E_END_TRY;
    return st;
}

/* ---- summary.csv and the join -------------------------------------------- */

static fx_status push_obs(eval_state *s, double p, int y, size_t li, const char *group)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 1024;
        double *ns = realloc(s->score, nc * sizeof *ns);
        if (!ns)
            return FX_ERR_NOMEM;
        s->score = ns;
        int *nt = realloc(s->truth, nc * sizeof *nt);
        if (!nt)
            return FX_ERR_NOMEM;
        s->truth = nt;
        size_t *nl = realloc(s->lab_of, nc * sizeof *nl);
        if (!nl)
            return FX_ERR_NOMEM;
        s->lab_of = nl;
        char **ng = s->group_by ? realloc(s->grp, nc * sizeof *ng) : NULL;
        if (s->group_by && !ng)
            return FX_ERR_NOMEM;
        s->grp = ng;
        s->cap = nc;
    }
    if (s->group_by && !(s->grp[s->n] = strdup(group ? group : "")))
        return FX_ERR_NOMEM;
    s->score[s->n] = p;
    s->truth[s->n] = y;
    s->lab_of[s->n] = li;
    s->n++;
    return FX_OK;
}

static fx_status read_summary(eval_state *s, const char *path, fx_eval_report *rep, size_t *hits,
                              fx_error *err)
{
    s->f = fopen(path, "r");
    if (!s->f)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: cannot open: %s (give --results the "
                            "directory `fxscreen run --out` wrote)",
                            path, strerror(errno));
    char *cols[MAX_COLS];
    long line = 0;
    int nc = read_header(s, cols, &line);
    if (nc < 0)
        return fx_error_set(err, FX_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    int cp = find_col(cols, nc, "path"), cs = find_col(cols, nc, "status");
    int cprob = find_col(cols, nc, "probability"), cpred = find_col(cols, nc, "prediction");
    int cpx = find_col(cols, nc, "peak_x"), cpy = find_col(cols, nc, "peak_y");
    if (cp < 0 || cs < 0 || cprob < 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "%s: header needs 'path', 'status' and "
                            "'probability' columns (is this the summary.csv of `fxscreen run`?)",
                            path);
    int cg = s->group_by && !s->group_in_labels ? find_col(cols, nc, s->group_by) : -1;
    if (s->group_by && !s->group_in_labels && cg < 0)
        return fx_error_set(err, FX_ERR_USAGE,
                            "--group-by %s: no such column in the labels file nor in %s (give a "
                            "labels.csv column such as body_part or site, or one of summary.csv's "
                            "DICOM columns such as body_part or view_position)",
                            s->group_by, path);
    for (;;) {
        long at;
        char *f[MAX_COLS];
        int nf = next_record(s, &line, &at, f);
        if (nf < 0)
            return fx_error_set(err, FX_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (nf == 0)
            break;
        rep->rows++;
        const char *p = field(f, nf, cp);
        int by_base = 0;
        long li = *p ? lookup(s, p, &by_base) : -1;
        if (li >= 0)
            s->lab[li].seen = 1;
        if (strcmp(field(f, nf, cs), "ok") != 0) {
            rep->rows_error++;
            continue;
        }
        double prob;
        if (!parse_double(field(f, nf, cprob), &prob) || prob < 0.0 || prob > 1.0)
            return fx_error_set(err, FX_ERR_FORMAT,
                                "%s: line %ld: probability '%s' of an ok "
                                "row is not a number in [0, 1]",
                                path, at, field(f, nf, cprob));
        const char *pxs = field(f, nf, cpx), *pys = field(f, nf, cpy);
        double px = NAN, py = NAN;
        int has_peak = *pxs || *pys;
        if (has_peak && (!parse_double(pxs, &px) || !parse_double(pys, &py)))
            return fx_error_set(err, FX_ERR_FORMAT,
                                "%s: line %ld: peak '%s,%s' needs two "
                                "numbers or two empty fields",
                                path, at, pxs, pys);
        const char *pr = field(f, nf, cpred);
        int pv = -1;
        if (*pr && (pv = parse_bit(pr)) < 0)
            return fx_error_set(err, FX_ERR_FORMAT,
                                "%s: line %ld: prediction '%s' is not 0 "
                                "or 1",
                                path, at, pr);
        if (li < 0) {
            rep->rows_unmatched++;
            continue;
        }
        label_row *L = &s->lab[li];
        if (L->taken) {
            rep->rows_duplicate++;
            continue;
        }
        if (pv >= 0)
            rep->prediction_mismatch += pv != (prob >= rep->threshold);
        L->taken = 1;
        rep->matched_basename += by_base;
        if (push_obs(s, prob, L->label, (size_t)li, cg >= 0 ? field(f, nf, cg) : L->group) != FX_OK)
            return fx_error_set(err, FX_ERR_NOMEM, "%s: out of memory", path);
        if (L->label == 1 && L->has_box) {
            rep->pg_fractured_box++;
            if (!has_peak)
                rep->pg_no_peak++;
            else
                *hits += (size_t)fx_eval_pointing_hit(px, py, L->x0, L->y0, L->x1, L->y1);
        }
    }
    fclose(s->f);
    s->f = NULL;
    return FX_OK;
}

/* ---- the job ------------------------------------------------------------- */

/* Absolute form of p for the report (realpath when it resolves). */
static void abs_copy(char *dst, size_t n, const char *p)
{
    char *rp = realpath(p, NULL);
    snprintf(dst, n, "%s", rp ? rp : p);
    free(rp);
}

/* --threshold, else DIR's results.h5 `threshold`, else 0.5. */
static fx_status pick_threshold(const fx_eval_job *job, const char *h5, int have_h5, double *thr,
                                const char **source, fx_error *err)
{
    if (job->threshold_given) {
        *thr = job->threshold;
        *source = "--threshold";
        return FX_OK;
    }
    if (have_h5) {
        *source = "results.h5";
        return read_h5_threshold(h5, thr, err);
    }
    *thr = 0.5;
    *source = "default";
    return FX_OK;
}

/* --compare DIR2: the same join for DIR2, then the rows of labels both
 * runs evaluated, paired by label. */
static fx_status compare_runs(const fx_eval_job *job, const eval_state *a, fx_eval_report *rep,
                              fx_error *err)
{
    fx_eval_compare *c = &rep->compare;
    char summary[4200], h5[4200];
    snprintf(summary, sizeof summary, "%s/summary.csv", job->compare_dir);
    snprintf(h5, sizeof h5, "%s/results.h5", job->compare_dir);
    abs_copy(c->dir, sizeof c->dir, job->compare_dir);
    fx_status st =
        pick_threshold(job, h5, access(h5, F_OK) == 0, &c->threshold, &c->threshold_source, err);
    eval_state b = {0};
    fx_eval_report rb = {.threshold = c->threshold};
    size_t hits = 0;
    if (st == FX_OK)
        st = read_labels(&b, job->labels_path, err);
    if (st == FX_OK)
        st = read_summary(&b, summary, &rb, &hits, err);
    long *at_b = st == FX_OK ? malloc((b.nlab + 1) * sizeof *at_b) : NULL;
    double *pa = NULL, *pb = NULL;
    int *y = NULL, *ca = NULL, *cb = NULL;
    if (st == FX_OK && at_b) {
        pa = malloc((a->n + 1) * sizeof *pa), pb = malloc((a->n + 1) * sizeof *pb);
        y = malloc((a->n + 1) * sizeof *y), ca = malloc((a->n + 1) * sizeof *ca);
        cb = malloc((a->n + 1) * sizeof *cb);
    }
    if (st == FX_OK && (!at_b || !pa || !pb || !y || !ca || !cb))
        st = fx_error_set(err, FX_ERR_NOMEM, "eval --compare: out of memory");
    if (st == FX_OK) {
        c->rows_b = b.n;
        for (size_t l = 0; l < b.nlab; l++)
            at_b[l] = -1;
        for (size_t j = 0; j < b.n; j++)
            at_b[b.lab_of[j]] = (long)j;
        size_t k = 0;
        for (size_t i = 0; i < a->n; i++) {
            long j = a->lab_of[i] < b.nlab ? at_b[a->lab_of[i]] : -1;
            if (j < 0)
                continue;
            pa[k] = a->score[i], pb[k] = b.score[j], y[k] = a->truth[i];
            ca[k] = (pa[k] >= rep->threshold) == (y[k] == 1);
            cb[k] = (pb[k] >= c->threshold) == (y[k] == 1);
            k++;
        }
        c->n = k;
        st = fx_eval_paired_delong(pa, pb, y, k, &c->delong, err);
        c->mcnemar = fx_eval_mcnemar(ca, cb, k);
        rep->compared = st == FX_OK;
    }
    free(at_b), free(pa), free(pb), free(y), free(ca), free(cb);
    state_free(&b);
    if (st != FX_OK)
        fx_error_prefix(err, "--compare %s", job->compare_dir);
    return st;
}

void fx_eval_report_free(fx_eval_report *rep)
{
    for (size_t g = 0; g < rep->ngroups; g++)
        free(rep->groups[g].value);
    free(rep->groups);
    rep->groups = NULL;
    rep->ngroups = 0;
}

fx_status fx_eval_job_run(const fx_eval_job *job, fx_eval_report *rep, fx_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (!job->results_dir || !job->labels_path)
        return fx_error_set(err, FX_ERR_USAGE, "eval needs --results DIR and --labels FILE");
    if (job->threshold_given && !(job->threshold >= 0.0 && job->threshold <= 1.0))
        return fx_error_set(err, FX_ERR_USAGE, "threshold %g is not in [0, 1]", job->threshold);
    fx_iso8601_now(rep->created, sizeof rep->created);

    char summary[4200], h5[4200];
    snprintf(summary, sizeof summary, "%s/summary.csv", job->results_dir);
    snprintf(h5, sizeof h5, "%s/results.h5", job->results_dir);
    abs_copy(rep->summary_path, sizeof rep->summary_path, summary);
    abs_copy(rep->labels_path, sizeof rep->labels_path, job->labels_path);
    if (job->json_path)
        snprintf(rep->json_path, sizeof rep->json_path, "%s", job->json_path);
    else
        snprintf(rep->json_path, sizeof rep->json_path, "%s/eval.json", job->results_dir);

    rep->have_results_h5 = access(h5, F_OK) == 0;
    if (rep->have_results_h5)
        abs_copy(rep->results_h5, sizeof rep->results_h5, h5);
    fx_status st0 =
        pick_threshold(job, h5, rep->have_results_h5, &rep->threshold, &rep->threshold_source, err);
    if (st0 != FX_OK)
        return st0;

    eval_state s = {.group_by = job->group_by};
    size_t hits = 0;
    fx_status st = read_labels(&s, job->labels_path, err);
    if (st == FX_OK)
        st = read_summary(&s, summary, rep, &hits, err);
    if (st == FX_OK) {
        rep->labels = s.nlab;
        for (size_t i = 0; i < s.nlab; i++)
            rep->labels_unmatched += !s.lab[i].seen;
        rep->n = s.n;
        st = fx_eval_auroc(s.score, s.truth, s.n, &rep->auroc, err);
    }
    if (st == FX_OK) {
        rep->cm = fx_eval_confusion(s.score, s.truth, s.n, rep->threshold);
        rep->rates = fx_eval_rates(&rep->cm);
        rep->kappa = fx_eval_kappa(&rep->cm);
        rep->pointing = fx_eval_wilson(hits, rep->pg_fractured_box - rep->pg_no_peak);
        st = ev_research(job, s.score, s.truth, s.n, rep, err);
    }
    if (st == FX_OK && job->group_by) {
        snprintf(rep->group_by, sizeof rep->group_by, "%s", job->group_by);
        snprintf(rep->group_source, sizeof rep->group_source, "%s",
                 s.group_in_labels ? "labels.csv" : "summary.csv");
        st = ev_subgroups((const char *const *)s.grp, s.score, s.truth, s.n, rep, err);
    }
    if (st == FX_OK && job->compare_dir)
        st = compare_runs(job, &s, rep, err);
    if (st == FX_OK && job->plots_dir)
        st = ev_plots(job, s.score, s.truth, s.n, rep, err);
    if (st == FX_OK && job->faith &&
        (st = fx_faith_run(job->results_dir, job->faith, &rep->faith, err)) == FX_OK)
        rep->faith_done = 1;
    if (st == FX_OK)
        st = ev_write_json(rep, job->results_dir, err);
    state_free(&s);
    return st;
}
