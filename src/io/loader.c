/* fxscreen: the loader table, format sniffing, limit checks and file reading.
 *
 * Everything here is stateless: the table is const, errors travel in the
 * caller's fx_error, and buffers are owned by the caller. */
#include "fxscreen/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The built-in table, NULL-terminated; static const so it is thread-safe. */
const fx_loader *const *fx_loaders(void)
{
    static const fx_loader *const table[] = {&fx_png_loader,
                                             &fx_tiff_loader,
                                             &fx_jpeg_loader,
                                             &fx_jp2_loader,
#ifndef FX_NO_DICOM
                                             &fx_dicom_loader,
#endif
                                             NULL};
    return table;
}

/* First loader whose sniff() accepts the bytes, or NULL. */
const fx_loader *fx_loader_find(const uint8_t *bytes, size_t n)
{
    if (!bytes || n == 0)
        return NULL;
    for (const fx_loader *const *l = fx_loaders(); *l; l++)
        if ((*l)->sniff(bytes, n))
            return *l;
    return NULL;
}

/* 1 if path ends in a suffix of some loader (case-insensitive), else 0. */
int fx_loader_suffix_known(const char *path)
{
    if (!path)
        return 0;
    size_t len = strlen(path);
    for (const fx_loader *const *l = fx_loaders(); *l; l++) {
        for (const char *const *s = (*l)->suffixes; *s; s++) {
            size_t sl = strlen(*s);
            if (len > sl && strcasecmp(path + len - sl, *s) == 0)
                return 1;
        }
    }
    return 0;
}

/* Phase one (see loader.h): sniff unless ld is given, read the header and
 * check the limits, all before any pixel buffer exists. */
fx_status fx_decode_header(const fx_loader **ld, const uint8_t *bytes, size_t n,
                           const fx_decode_limits *lim, fx_image_info *info, fx_error *err)
{
    memset(info, 0, sizeof *info);
    if (!bytes || n == 0)
        return fx_error_set(err, FX_ERR_FORMAT, "empty file");
    if (!*ld)
        *ld = fx_loader_find(bytes, n);
    if (!*ld) {
        /* Show the first bytes: they usually tell what the file really is. */
        char hex[3 * 8 + 1] = "";
        size_t k = n < 8 ? n : 8;
        for (size_t i = 0, len = 0; i < k; i++)
            len += (size_t)snprintf(hex + len, sizeof hex - len, "%s%02x", i ? " " : "", bytes[i]);
        return fx_error_set(err, FX_ERR_UNSUPPORTED,
                            "not a PNG, TIFF, JPEG, JPEG 2000 or DICOM file (starts with bytes %s)",
                            hex);
    }
    const char *name = (*ld)->name;
    fx_status st = (*ld)->header(bytes, n, info, err);
    if (st != FX_OK)
        return st;
    if (info->width <= 0 || info->height <= 0)
        return fx_error_set(err, FX_ERR_FORMAT, "%s: image has zero size (%d x %d)", name,
                            info->width, info->height);
    /* The product is taken in double (exact for any pair of ints up to
     * 2^53) so it cannot overflow. */
    double mp = (double)info->width * (double)info->height / 1e6;
    if (lim && lim->max_megapixels > 0 && mp > lim->max_megapixels)
        return fx_error_set(err, FX_ERR_LIMIT,
                            "%s image is %d x %d = %.1f megapixels, over the limit of %.1f "
                            "(raise limits.max_megapixels in the config)",
                            name, info->width, info->height, mp, lim->max_megapixels);
    if (fx_image_bytes(info) == 0) /* 0 on size_t overflow */
        return fx_error_set(err, FX_ERR_LIMIT, "%s image %d x %d is too large to address", name,
                            info->width, info->height);
    return FX_OK;
}

/* Decode with a given loader (or by sniffing when ld is NULL): header, limit
 * check, allocation, load.  On failure img is left zeroed. */
fx_status fx_decode_memory_as(const fx_loader *ld, const uint8_t *bytes, size_t n,
                              const fx_decode_limits *lim, fx_image *img, fx_error *err)
{
    if (!img)
        return fx_error_set(err, FX_ERR_USAGE, "fx_decode_memory: img is NULL");
    memset(img, 0, sizeof *img);
    fx_image_info info;
    fx_status st = fx_decode_header(&ld, bytes, n, lim, &info, err);
    if (st != FX_OK)
        return st;
    size_t bytes_needed = fx_image_bytes(&info);
    void *pixels = malloc(bytes_needed);
    if (!pixels)
        return fx_error_set(err, FX_ERR_NOMEM, "cannot allocate %zu bytes for a %d x %d image",
                            bytes_needed, info.width, info.height);
    st = ld->load(bytes, n, &info, pixels, err);
    if (st != FX_OK) {
        free(pixels);
        return st;
    }
    img->info = info;
    img->pixels = pixels;
    img->owned = 1;
    return FX_OK;
}

/* Sniff, header, check limits, allocate, load (see loader.h). */
fx_status fx_decode_memory(const uint8_t *bytes, size_t n, const fx_decode_limits *lim,
                           fx_image *img, fx_error *err)
{
    return fx_decode_memory_as(NULL, bytes, n, lim, img, err);
}

/* Read a whole regular file (see loader.h).  Messages do not name the path. */
fx_status fx_read_file(const char *path, size_t max_bytes, uint8_t **bytes, size_t *n,
                       fx_error *err)
{
    if (!path || !bytes || !n)
        return fx_error_set(err, FX_ERR_USAGE, "fx_read_file: NULL argument");
    *bytes = NULL;
    *n = 0;
    /* O_NONBLOCK: opening a FIFO must not hang waiting for a writer; it is
     * refused below by the fstat check anyway. */
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fx_error_set(err, FX_ERR_IO, "cannot open: %s", strerror(errno));

    fx_status st = FX_OK;
    uint8_t *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = fx_error_set(err, FX_ERR_IO, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = fx_error_set(err, FX_ERR_IO, "is a directory");
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = fx_error_set(err, FX_ERR_IO, "not a regular file");
        goto fail;
    }
    if (sb.st_size < 0 || (unsigned long long)sb.st_size > (unsigned long long)(SIZE_MAX - 1)) {
        st = fx_error_set(err, FX_ERR_LIMIT, "file size %lld is not addressable",
                          (long long)sb.st_size);
        goto fail;
    }
    size_t size = (size_t)sb.st_size;
    if (max_bytes && size > max_bytes) {
        st = fx_error_set(err, FX_ERR_LIMIT, "file is %zu bytes, over the limit of %zu", size,
                          max_bytes);
        goto fail;
    }
    buf = malloc(size ? size : 1); /* never NULL on success, even when empty */
    if (!buf) {
        st = fx_error_set(err, FX_ERR_NOMEM, "cannot allocate %zu bytes to read the file", size);
        goto fail;
    }
    /* Short reads are normal (signals, network filesystems): loop.  A file
     * that shrank since fstat just yields fewer bytes. */
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            st = fx_error_set(err, FX_ERR_IO, "read failed after %zu bytes: %s", got,
                              strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *bytes = buf;
    *n = got;
    return FX_OK;

fail:
    free(buf);
    close(fd);
    return st;
}

/* Read and decode one file; every message starts with the path. */
fx_status fx_decode_file(const char *path, const fx_decode_limits *lim, fx_image *img,
                         fx_error *err)
{
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (img)
        memset(img, 0, sizeof *img);
    fx_status st = fx_read_file(path, 0, &bytes, &n, err);
    if (st == FX_OK) {
        st = fx_decode_memory(bytes, n, lim, img, err);
        free(bytes);
    }
    if (st != FX_OK)
        fx_error_prefix(err, "%s", path ? path : "(null)");
    return st;
}

int fx_loader_sniff_file(const char *path)
{
    uint8_t head[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = read(fd, head, sizeof head);
    close(fd);
    return k > 0 && fx_loader_find(head, (size_t)k) != NULL;
}
