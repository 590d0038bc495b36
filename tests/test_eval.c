/* Screening statistics (src/eval/metrics.c) on cases worked by hand, the CSV
 * record reader, and the eval job on a small joined directory.  The same
 * numbers against scikit-learn: tests/py/test_eval.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/eval.h"
#include "fxscreen/fsutil.h"

#define Z FX_EVAL_Z95

static double auc_of(const double *s, const int *y, size_t n)
{
    fx_auroc a;
    fx_error e = {0};
    if (fx_eval_auroc(s, y, n, &a, &e) != FX_OK)
        return -1;
    return a.auc;
}

static void test_auroc_perfect_reversed_ties(void)
{
    double s[6] = {0.1, 0.2, 0.3, 0.7, 0.8, 0.9};
    int y[6] = {0, 0, 0, 1, 1, 1};
    int r[6] = {1, 1, 1, 0, 0, 0};
    double t[6] = {0.4, 0.4, 0.4, 0.4, 0.4, 0.4};
    CHECK_NEAR(auc_of(s, y, 6), 1.0, 0);
    CHECK_NEAR(auc_of(s, r, 6), 0.0, 0);
    CHECK_NEAR(auc_of(t, y, 6), 0.5, 0);
    /* Order of the input does not matter. */
    double s2[6] = {0.9, 0.1, 0.8, 0.2, 0.7, 0.3};
    int y2[6] = {1, 0, 1, 0, 1, 0};
    CHECK_NEAR(auc_of(s2, y2, 6), 1.0, 0);
}

/* pos {0.8, 0.5}, neg {0.5, 0.2}: pairs 1 + 1 + 0.5 (tie) + 1 = 3.5 of 4.
 * DeLong: V10 = {1, 0.75}, V01 = {0.75, 1}; S10 = S01 = 2 * 0.125^2 = 0.03125;
 * var = 0.03125/2 + 0.03125/2 = 0.03125. */
static void test_auroc_hand_delong(void)
{
    double s[4] = {0.8, 0.5, 0.5, 0.2};
    int y[4] = {1, 1, 0, 0};
    fx_auroc a;
    fx_error e = {0};
    CHECK(fx_eval_auroc(s, y, 4, &a, &e) == FX_OK);
    CHECK(a.npos == 2 && a.nneg == 2);
    CHECK_NEAR(a.auc, 0.875, 1e-15);
    CHECK_NEAR(a.se, sqrt(0.03125), 1e-15);
    CHECK_NEAR(a.lo, 0.875 - Z * sqrt(0.03125), 1e-12);
    CHECK_NEAR(a.hi, 1.0, 0); /* clipped */
}

static void test_auroc_undefined_and_bad_input(void)
{
    double s[3] = {0.1, 0.5, 0.9};
    int pos[3] = {1, 1, 1}, one_neg[3] = {0, 1, 1}, bad[3] = {0, 2, 1};
    fx_auroc a;
    fx_error e = {0};
    CHECK(fx_eval_auroc(s, pos, 3, &a, &e) == FX_OK);
    CHECK(isnan(a.auc) && isnan(a.se) && isnan(a.lo) && a.npos == 3 && a.nneg == 0);
    CHECK(fx_eval_auroc(s, one_neg, 3, &a, &e) == FX_OK); /* auc defined, se is not */
    CHECK_NEAR(a.auc, 1.0, 0);
    CHECK(isnan(a.se) && isnan(a.hi));
    CHECK(fx_eval_auroc(s, bad, 3, &a, &e) == FX_ERR_USAGE);
    CHECK(strstr(e.msg, "label 1 is 2") != NULL);
    double nan_s[2] = {NAN, 0.2};
    int y2[2] = {1, 0};
    CHECK(fx_eval_auroc(nan_s, y2, 2, &a, &e) == FX_ERR_USAGE);
    CHECK(fx_eval_auroc(NULL, NULL, 0, &a, &e) == FX_OK && isnan(a.auc));
}

static void test_confusion_threshold(void)
{
    double s[6] = {0.2, 0.5, 0.49, 0.5, 0.9, 0.1};
    int y[6] = {0, 0, 1, 1, 1, 0};
    fx_confusion cm = fx_eval_confusion(s, y, 6, 0.5); /* 0.5 >= 0.5 is positive */
    CHECK(cm.tp == 2 && cm.fn == 1 && cm.fp == 1 && cm.tn == 2);
    cm = fx_eval_confusion(s, y, 6, 0.0);
    CHECK(cm.tp == 3 && cm.fp == 3 && cm.tn == 0 && cm.fn == 0);
}

/* TP 20, FN 5, FP 10, TN 15 (N 50): po = 35/50 = 0.7;
 * pe = (30*25 + 20*25) / 2500 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
 * Sensitivity 20/25 = 0.8: Wilson [0.60869, 0.91139]; specificity 15/25 = 0.6:
 * [0.40739, 0.76597]; PPV 20/30, NPV 15/20. */
static void test_kappa_and_wilson_by_hand(void)
{
    fx_confusion cm = {.tp = 20, .fp = 10, .tn = 15, .fn = 5};
    CHECK_NEAR(fx_eval_kappa(&cm), 0.4, 1e-15);
    fx_rates r = fx_eval_rates(&cm);
    CHECK_NEAR(r.sensitivity.value, 0.8, 1e-15);
    CHECK(r.sensitivity.x == 20 && r.sensitivity.n == 25);
    CHECK_NEAR(r.sensitivity.lo, 0.6086904963045967, 1e-12);
    CHECK_NEAR(r.sensitivity.hi, 0.9113941531319742, 1e-12);
    CHECK_NEAR(r.specificity.value, 0.6, 1e-15);
    CHECK_NEAR(r.specificity.lo, 0.40739457358967, 1e-12);
    CHECK_NEAR(r.specificity.hi, 0.7659669762225203, 1e-12);
    CHECK_NEAR(r.ppv.value, 20.0 / 30.0, 1e-15);
    CHECK_NEAR(r.npv.value, 15.0 / 20.0, 1e-15);
    CHECK_NEAR(r.accuracy.value, 0.7, 1e-15);
    /* Wilson at the edges: 0/n has lo 0 and hi z^2/(n+z^2); n/n mirrors it. */
    fx_proportion p0 = fx_eval_wilson(0, 10), p1 = fx_eval_wilson(10, 10);
    CHECK_NEAR(p0.lo, 0.0, 1e-15);
    CHECK_NEAR(p0.hi, Z * Z / (10 + Z * Z), 1e-12);
    CHECK_NEAR(p1.hi, 1.0, 1e-15);
    CHECK_NEAR(p1.lo, 10 / (10 + Z * Z), 1e-12);
    fx_proportion pn = fx_eval_wilson(0, 0);
    CHECK(isnan(pn.value) && isnan(pn.lo) && isnan(pn.hi));
}

static void test_zero_denominators(void)
{
    fx_confusion none = {0, 0, 0, 0};
    CHECK(isnan(fx_eval_kappa(&none)));
    fx_confusion allneg = {.tn = 7}; /* every truth and prediction 0: pe = 1 */
    CHECK(isnan(fx_eval_kappa(&allneg)));
    fx_rates r = fx_eval_rates(&allneg);
    CHECK(isnan(r.sensitivity.value) && isnan(r.ppv.value));
    CHECK_NEAR(r.specificity.value, 1.0, 0);
    CHECK_NEAR(r.npv.value, 1.0, 0);
    /* Predictions constant, truth mixed: pe = po, kappa 0. */
    fx_confusion constant = {.tp = 3, .fp = 5};
    CHECK_NEAR(fx_eval_kappa(&constant), 0.0, 1e-15);
    /* Perfect agreement on both classes. */
    fx_confusion perfect = {.tp = 4, .tn = 6};
    CHECK_NEAR(fx_eval_kappa(&perfect), 1.0, 1e-15);
}

/* Box [10, 20) x [30, 50): width 10, height 20, grown by 1 and 2 on each
 * side: x in [9, 21), y in [28, 52). */
static void test_pointing_rule(void)
{
    CHECK(fx_eval_pointing_hit(15, 40, 10, 30, 20, 50));
    CHECK(fx_eval_pointing_hit(9, 28, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(8.999, 40, 10, 30, 20, 50));
    CHECK(fx_eval_pointing_hit(20.999, 51.999, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(21, 40, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(15, 52, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(15, 27.9, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(NAN, 40, 10, 30, 20, 50));
    CHECK(!fx_eval_pointing_hit(10, 30, 10, 30, 10, 50)); /* empty box */
}

static void test_csv_record_reader(void)
{
    char path[] = "/tmp/fx_test_eval_csvXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    fputs("a,\"b,1\",c\r\n\"multi\nline\",\"q\"\"x\"\n\nlast,no-newline", f);
    rewind(f);
    char *buf = NULL, *fl[8];
    size_t cap = 0;
    long lines = 0;
    CHECK(fx_csv_read_record(f, &buf, &cap, &lines) == 1);
    CHECK(fx_csv_split(buf, fl, 8) == 3 && !strcmp(fl[1], "b,1") && !strcmp(fl[2], "c"));
    CHECK(fx_csv_read_record(f, &buf, &cap, &lines) == 1 && lines == 3);
    CHECK(fx_csv_split(buf, fl, 8) == 2 && !strcmp(fl[0], "multi\nline") && !strcmp(fl[1], "q\"x"));
    CHECK(fx_csv_read_record(f, &buf, &cap, &lines) == 1 && buf[0] == '\0');
    CHECK(fx_csv_read_record(f, &buf, &cap, &lines) == 1 && !strcmp(buf, "last,no-newline"));
    CHECK(lines == 5);
    CHECK(fx_csv_read_record(f, &buf, &cap, &lines) == 0);
    free(buf);
    fclose(f);
    unlink(path);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* A results dir + labels in a temporary tree; checks the join counts and the
 * statistics end to end through the library (the CLI: tests/py). */
static void test_job_join(void)
{
    char root[] = "/tmp/fx_test_evalXXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/data", root);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/res", root);
    mkdir(p, 0777);
    const char *imgs[] = {"a.png", "b.png", "c.png", "d.png", "e.png"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/data/%s", root, imgs[i]);
        write_file(p, "");
    }
    snprintf(p, sizeof p, "%s/data/labels.csv", root);
    write_file(p, "path,label,cx,cy,x0,y0,x1,y1\n"
                  "a.png,1,15,15,10,10,20,20\n"
                  "b.png,1,15,15,10,10,20,20\n"
                  "c.png,0,,,,,,\n"
                  "d.png,0,,,,,,\n"
                  "e.png,1,15,15,10,10,20,20\n"
                  "gone.png,0,,,,,,\n");
    snprintf(p, sizeof p, "%s/res/summary.csv", root);
    snprintf(q, sizeof q,
             "path,status,probability,prediction,peak_x,peak_y,x0,y0,x1,y1,error\n"
             "%s/data/a.png,ok,0.9,1,15,15,,,,,\n"   /* TP, hit */
             "%s/data/./b.png,ok,0.4,0,25,25,,,,,\n" /* FN, miss (x < 21 fails) */
             "%s/data/c.png,ok,0.6,1,,,,,,,\n"       /* FP */
             "/elsewhere/d.png,ok,0.1,0,,,,,,,\n"    /* TN via basename */
             "%s/data/e.png,error,,,,,,,,,\"decode, failed\"\n"
             "%s/data/a.png,ok,0.2,0,,,,,,,\n"    /* duplicate */
             "/x/stranger.png,ok,0.3,0,,,,,,,\n", /* unmatched */
             root, root, root, root, root);
    write_file(p, q);
    fx_eval_job job = {0};
    snprintf(p, sizeof p, "%s/res", root);
    snprintf(q, sizeof q, "%s/data/labels.csv", root);
    job.results_dir = p;
    job.labels_path = q;
    fx_eval_report *rep = malloc(sizeof *rep);
    fx_error err = {0};
    fx_status st = fx_eval_job_run(&job, rep, &err);
    CHECK_MSG(st == FX_OK, "%s", err.msg);
    if (st == FX_OK) {
        CHECK(rep->rows == 7 && rep->rows_error == 1 && rep->rows_unmatched == 1);
        CHECK(rep->rows_duplicate == 1 && rep->matched_basename == 1);
        CHECK(rep->labels == 6 && rep->labels_unmatched == 1 && rep->n == 4);
        CHECK(!strcmp(rep->threshold_source, "default") && rep->threshold == 0.5);
        CHECK(rep->cm.tp == 1 && rep->cm.fn == 1 && rep->cm.fp == 1 && rep->cm.tn == 1);
        /* pos {0.9, 0.4} vs neg {0.6, 0.1}: 1 + 1 + 0 + 1 = 3 of 4 */
        CHECK_NEAR(rep->auroc.auc, 0.75, 1e-15);
        CHECK_NEAR(rep->kappa, 0.0, 1e-15);
        CHECK(rep->pg_fractured_box == 2 && rep->pg_no_peak == 0);
        CHECK(rep->pointing.x == 1 && rep->pointing.n == 2);
        CHECK(rep->prediction_mismatch == 0);
        snprintf(q, sizeof q, "%s/res/eval.json", root);
        CHECK(access(q, R_OK) == 0);
        unlink(q);
    }
    /* Missing summary: a usage error naming the file. */
    job.results_dir = root;
    snprintf(q, sizeof q, "%s/data/labels.csv", root);
    CHECK(fx_eval_job_run(&job, rep, &err) == FX_ERR_USAGE);
    CHECK(strstr(err.msg, "summary.csv") != NULL);
    /* A malformed probability names the line. */
    snprintf(p, sizeof p, "%s/res/summary.csv", root);
    write_file(p, "path,status,probability\nx.png,ok,1.5\n"); /* checked even unmatched */
    snprintf(p, sizeof p, "%s/res", root);
    job.results_dir = p;
    CHECK(fx_eval_job_run(&job, rep, &err) == FX_ERR_FORMAT);
    CHECK(strstr(err.msg, "line 2") != NULL);
    free(rep);
    const char *rm[] = {
        "res/summary.csv", "data/labels.csv", "data/a.png", "data/b.png", "data/c.png",
        "data/d.png",      "data/e.png",      "res",        "data"};
    for (size_t i = 0; i < sizeof rm / sizeof rm[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, rm[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    rmdir(root);
}

int main(void)
{
    RUN(test_auroc_perfect_reversed_ties);
    RUN(test_auroc_hand_delong);
    RUN(test_auroc_undefined_and_bad_input);
    RUN(test_confusion_threshold);
    RUN(test_kappa_and_wilson_by_hand);
    RUN(test_zero_denominators);
    RUN(test_pointing_rule);
    RUN(test_csv_record_reader);
    RUN(test_job_join);
    return check_summary();
}
