/* Tiny 5x7 bitmap font for burned-in radiograph markers (internal to synth). */
#ifndef FX_SYNTH_FONT_H
#define FX_SYNTH_FONT_H

#define FX_FONT_W 5
#define FX_FONT_H 7

/* Rows of glyph c, top first; bit 4 of each row is the leftmost column.
 * Returns NULL for a character the font lacks.  Covers the letters used on
 * lead markers (A L P R) and the digits 0-9. */
const unsigned char *fx_font_glyph(char c);

#endif
