/* serve's web app and OpenAPI document, embedded in the binary (no CDN, no
 * files beside it: the app must work on an isolated hospital network).
 * The assembler's .incbin pulls each file from src/serve/web at build time;
 * the Makefile makes this object depend on them. */
#include <string.h>

#include "core/embed.h"
#include "serve/serve_internal.h"

FX_EMBED(sv_web_index, "src/serve/web/index.html")
FX_EMBED(sv_web_js, "src/serve/web/app.js")
FX_EMBED(sv_web_css, "src/serve/web/app.css")
FX_EMBED(sv_web_manifest, "src/serve/web/manifest.webmanifest")
FX_EMBED(sv_web_icon, "src/serve/web/icon.svg")
FX_EMBED(sv_web_openapi, "src/serve/web/openapi.json")

const sv_asset *sv_asset_find(const char *path)
{
    static sv_asset table[6];
    static const struct {
        const char *path, *type;
    } names[6] = {{"/", "text/html; charset=utf-8"},
                  {"/app.js", "text/javascript; charset=utf-8"},
                  {"/app.css", "text/css; charset=utf-8"},
                  {"/manifest.webmanifest", "application/manifest+json"},
                  {"/icon.svg", "image/svg+xml"},
                  {"/openapi.json", "application/json"}};
    const unsigned char *start[6] = {sv_web_index,    sv_web_js,   sv_web_css,
                                     sv_web_manifest, sv_web_icon, sv_web_openapi};
    const unsigned char *end[6] = {sv_web_index_end,    sv_web_js_end,   sv_web_css_end,
                                   sv_web_manifest_end, sv_web_icon_end, sv_web_openapi_end};
    for (int i = 0; i < 6; i++) {
        if (strcmp(path, names[i].path) && !(i == 0 && !strcmp(path, "/index.html")))
            continue;
        table[i] = (sv_asset){names[i].path, names[i].type, start[i], (size_t)(end[i] - start[i])};
        return &table[i];
    }
    return NULL;
}
