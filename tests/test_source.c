/* Sources: directory walk order, filtering, symlink loops, list files, CSV,
 * stdin lists, errors as items. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fxscreen/source.h"

static char root[256];

static void touch(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
}

static void mk(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    mkdir(p, 0777);
}

/* Collect all items as "relpath|status" lines. */
static int collect(const char *const *specs, int n, FILE *in, char out[][256], int max)
{
    fx_source *s;
    fx_error err = {0};
    if (fx_source_create(specs, n, in, &s, &err) != FX_OK) {
        fprintf(stderr, "  create: %s\n", err.msg);
        return -1;
    }
    fx_source_item it;
    int k = 0;
    size_t rl = strlen(root);
    while (fx_source_next(s, &it)) {
        const char *p = it.path;
        if (strncmp(p, root, rl) == 0)
            p += rl + 1;
        if (k < max)
            snprintf(out[k], 256, "%s|%d", p, it.status);
        k++;
        free(it.path);
    }
    fx_source_destroy(s);
    return k;
}

static void setup(void)
{
    strcpy(root, "/tmp/fx_test_source_XXXXXX");
    if (!mkdtemp(root))
        abort();
    mk("d");
    mk("d/b");
    mk("d/a");
    mk("d/.hidden");
    touch("d/z.png");
    touch("d/B.TIF");
    touch("d/a/2.tiff");
    touch("d/a/1.png");
    touch("d/b/x.png");
    touch("d/b/notes.txt");
    touch("d/.hidden/h.png");
    touch("d/.dot.png");
}

static void test_dir_sorted_recursive(void)
{
    char got[16][256];
    char spec[300];
    snprintf(spec, sizeof spec, "%s/d", root);
    const char *specs[] = {spec};
    int n = collect(specs, 1, NULL, got, 16);
    /* byte order within each directory: "B.TIF" < "a" < "b" < "z.png" */
    const char *want[] = {"d/B.TIF|0", "d/a/1.png|0", "d/a/2.tiff|0", "d/b/x.png|0", "d/z.png|0"};
    CHECK_MSG(n == 5, "got %d items", n);
    for (int i = 0; i < 5 && i < n; i++)
        CHECK_MSG(strcmp(got[i], want[i]) == 0, "item %d: %s, want %s", i, got[i], want[i]);
    CHECK(fx_source_count(specs, 1) == 5);
}

static void test_symlink_loop(void)
{
    char link[400], target[300];
    snprintf(target, sizeof target, "%s/d", root);
    snprintf(link, sizeof link, "%s/d/b/loop", root);
    CHECK(symlink(target, link) == 0);
    char got[16][256];
    const char *specs[] = {target};
    int n = collect(specs, 1, NULL, got, 16);
    int loops = 0;
    for (int i = 0; i < n && i < 16; i++)
        if (strstr(got[i], "d/b/loop|") && !strstr(got[i], "|0"))
            loops++;
    CHECK_MSG(n == 6 && loops == 1, "n=%d loops=%d", n, loops);
    unlink(link);
}

static void test_list_file_relative(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/d/list.txt", root);
    FILE *f = fopen(p, "w");
    fputs("# comment\nz.png\n\n  a/1.png  \n/abs/path.png\n", f);
    fclose(f);
    char got[8][256];
    const char *specs[] = {p};
    int n = collect(specs, 1, NULL, got, 8);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(strcmp(got[0], "d/z.png|0") == 0);
        CHECK(strcmp(got[1], "d/a/1.png|0") == 0);
        CHECK(strcmp(got[2], "/abs/path.png|0") == 0);
    }
}

static void test_csv_path_column(void)
{
    char p[400];
    snprintf(p, sizeof p, "%s/d/labels.csv", root);
    FILE *f = fopen(p, "w");
    fputs("id,path,label\n1,z.png,0\n2,\"a/we,ird \"\"q\"\".png\",1\n", f);
    fclose(f);
    char got[8][256];
    const char *specs[] = {p};
    int n = collect(specs, 1, NULL, got, 8);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(strcmp(got[0], "d/z.png|0") == 0);
        CHECK_MSG(strcmp(got[1], "d/a/we,ird \"q\".png|0") == 0, "%s", got[1]);
    }
    /* A CSV without a path column is a usage error naming the fix. */
    f = fopen(p, "w");
    fputs("id,file\n1,z.png\n", f);
    fclose(f);
    fx_source *s;
    fx_error err = {0};
    CHECK(fx_source_create(specs, 1, NULL, &s, &err) == FX_OK);
    fx_source_item it;
    CHECK(fx_source_next(s, &it) == 1 && it.status != FX_OK && strstr(it.error, "path"));
    free(it.path);
    fx_source_destroy(s);
}

static void test_stdin_and_several(void)
{
    char text[] = "one.png\ntwo.tif\n";
    FILE *in = fmemopen(text, strlen(text), "r");
    char spec[300];
    snprintf(spec, sizeof spec, "%s/d/a", root);
    const char *specs[] = {"-", spec, "single.png"};
    char got[8][256];
    int n = collect(specs, 3, in, got, 8);
    fclose(in);
    CHECK(n == 5);
    if (n == 5) {
        CHECK(strcmp(got[0], "one.png|0") == 0);
        CHECK(strcmp(got[1], "two.tif|0") == 0);
        CHECK(strcmp(got[2], "d/a/1.png|0") == 0);
        CHECK(strcmp(got[4], "single.png|0") == 0);
    }
    const char *two[] = {"-", "-"};
    fx_source *s;
    fx_error err = {0};
    CHECK(fx_source_create(two, 2, stdin, &s, &err) == FX_ERR_USAGE);
    CHECK(fx_source_create(two, 0, stdin, &s, &err) == FX_ERR_USAGE);
}

static void test_missing_paths_become_items(void)
{
    const char *specs[] = {"/nonexistent/dir/x.png", "/nonexistent/list.txt"};
    fx_source *s;
    fx_error err = {0};
    /* A missing list file is unusable as a whole: usage error. */
    CHECK(fx_source_create(specs + 1, 1, NULL, &s, &err) == FX_ERR_USAGE);
    CHECK(strstr(err.msg, "/nonexistent/list.txt") != NULL);
    /* A missing image is still an item (the decoder will report it). */
    char got[4][256];
    CHECK(collect(specs, 1, NULL, got, 4) == 1);
    /* An unreadable directory becomes an error item (skipped as root). */
    if (geteuid() != 0) {
        char p[300];
        snprintf(p, sizeof p, "%s/d/a", root);
        chmod(p, 0);
        char spec[300];
        snprintf(spec, sizeof spec, "%s/d", root);
        const char *sp[] = {spec};
        int n = collect(sp, 1, NULL, got, 4);
        CHECK(n >= 1);
        chmod(p, 0755);
    }
}

/* Shards: round robin by index, every item exactly once over the shards,
 * the same list digest whichever shard walked it (and fx_source_list's). */
static void test_shards(void)
{
    char spec[300], missing[300];
    snprintf(spec, sizeof spec, "%s/d", root);
    snprintf(missing, sizeof missing, "%s/nothing.png", root);
    const char *specs[] = {spec, missing};
    size_t total = 0;
    char want_sha[FX_SHA256_HEX];
    CHECK(fx_source_list(specs, 2, &total, want_sha, NULL) == FX_OK);
    CHECK_MSG(total == 6, "listed %zu", total);
    /* The digest is the SHA-256 of each path with its NUL, in order. */
    fx_sha256 c;
    fx_sha256_init(&c);
    fx_source *s;
    fx_source_item it;
    CHECK(fx_source_create(specs, 2, NULL, &s, NULL) == FX_OK);
    while (fx_source_next(s, &it)) {
        fx_sha256_update(&c, it.path, strlen(it.path) + 1);
        free(it.path);
    }
    fx_source_destroy(s);
    uint8_t d[FX_SHA256_BYTES];
    char hex[FX_SHA256_HEX];
    fx_sha256_final(&c, d);
    fx_sha256_hex(d, hex);
    CHECK(strcmp(hex, want_sha) == 0);
    for (size_t n = 1; n <= 4; n++) {
        size_t seen = 0;
        for (size_t i = 0; i < n; i++) {
            CHECK(fx_source_create(specs, 2, NULL, &s, NULL) == FX_OK);
            fx_source_set_shard(s, i, n);
            size_t k = 0;
            while (fx_source_next(s, &it)) {
                CHECK_MSG(it.index == i + n * k, "shard %zu/%zu item %zu has index %zu", i, n, k,
                          it.index);
                k++;
                free(it.path);
            }
            size_t count = 0;
            CHECK(fx_source_digest(s, &count, hex) == 1);
            CHECK(count == total && strcmp(hex, want_sha) == 0);
            fx_source_destroy(s);
            CHECK_MSG(k == total / n + (i < total % n), "shard %zu/%zu: %zu items", i, n, k);
            seen += k;
        }
        CHECK(seen == total);
    }
    CHECK(fx_source_list((const char *[]){"-"}, 1, &total, hex, NULL) == FX_ERR_USAGE);
}

int main(void)
{
    setup();
    RUN(test_dir_sorted_recursive);
    RUN(test_symlink_loop);
    RUN(test_list_file_relative);
    RUN(test_csv_path_column);
    RUN(test_stdin_and_several);
    RUN(test_missing_paths_become_items);
    RUN(test_shards);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return check_summary();
}
