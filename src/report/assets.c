/* The triage report's stylesheet and script, embedded in the binary (the
 * report must open offline, from a USB stick, with nothing beside it).
 * The assembler's .incbin pulls each file from src/report/web at build time;
 * the Makefile makes this object depend on them. */
#include "core/embed.h"
#include "report/report_internal.h"

FX_EMBED(rp_web_css, "src/report/web/report.css")
FX_EMBED(rp_web_js, "src/report/web/report.js")

rp_asset rp_asset_css(void)
{
    return (rp_asset){rp_web_css, (size_t)(rp_web_css_end - rp_web_css)};
}

rp_asset rp_asset_js(void)
{
    return (rp_asset){rp_web_js, (size_t)(rp_web_js_end - rp_web_js)};
}
