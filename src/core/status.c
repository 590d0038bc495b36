#include "fxscreen/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fx_status_str(fx_status s)
{
    switch (s) {
    case FX_OK: return "ok";
    case FX_ERR_IO: return "i/o error";
    case FX_ERR_FORMAT: return "format error";
    case FX_ERR_UNSUPPORTED: return "unsupported";
    case FX_ERR_LIMIT: return "over limit";
    case FX_ERR_NOMEM: return "out of memory";
    case FX_ERR_USAGE: return "usage error";
    case FX_ERR_CONFIG: return "config error";
    case FX_ERR_INTERNAL: return "internal error";
    case FX_ERR_DEVICE: return "device error";
    case FX_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

fx_status fx_error_set(fx_error *err, fx_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void fx_error_prefix(fx_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[FX_ERROR_MSG_MAX], old[FX_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
}

void fx_error_clear(fx_error *err)
{
    if (err) {
        err->code = FX_OK;
        err->msg[0] = '\0';
    }
}
