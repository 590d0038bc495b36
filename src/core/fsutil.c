/* File-system and CSV helpers: see include/fxscreen/fsutil.h. */
#include "fxscreen/fsutil.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void fx_csv_field(FILE *f, const char *s)
{
    if (!s)
        s = "";
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

fx_status fx_mkdirs(const char *path, fx_error *err)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return fx_error_set(err, FX_ERR_USAGE, "output directory name is empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return fx_error_set(err, FX_ERR_IO, "%s: cannot create directory: %s", buf,
                                    strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fx_error_set(err, FX_ERR_IO, "%s: exists and is not a directory", path);
    return FX_OK;
}
