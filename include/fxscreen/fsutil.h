/* fxscreen: small file-system and CSV helpers shared by the jobs. */
#ifndef FXSCREEN_FSUTIL_H
#define FXSCREEN_FSUTIL_H

#include <stdio.h>

#include "fxscreen/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mkdir -p: create path and its parents (mode 0777 & ~umask).  FX_ERR_IO
 * naming the directory that could not be made, or path if it exists and is
 * not a directory. */
fx_status fx_mkdirs(const char *path, fx_error *err);

/* Write one CSV field, quoted per RFC 4180 when it needs it (NULL = ""). */
void fx_csv_field(FILE *f, const char *s);

/* Split one CSV record in place (RFC 4180: a field may be "quoted", with ""
 * for a quote inside; commas and newlines inside quotes are data).  Writes at
 * most max field pointers, all pointing into line (which is modified), and
 * returns the field count (>= 1; an empty line is one empty field).  Fields
 * past max are dropped.  Characters after a closing quote are kept. */
int fx_csv_split(char *line, char **fields, int max);

/* Read one CSV record from f into *buf (getline-style: *buf and *cap are grown
 * with realloc; the caller frees *buf): one line, plus the following lines
 * while a quoted field is still open.  The final "\n" or "\r\n" is removed.
 * *lines (if non-NULL) is increased by the physical lines read.  Returns 1
 * with a record, 0 at end of file, -1 on a read error or out of memory. */
int fx_csv_read_record(FILE *f, char **buf, size_t *cap, long *lines);

/* 1 if the last component of path has no extension: no '.', or only
 * digits after the last one (DICOM names files "IM0001" or by UID,
 * "1.2.840.1.7"); such files are sniffed instead of skipped. */
int fx_path_no_extension(const char *path);

/* path as seen from directory dir (a run's inputs from its run.json cwd):
 * dir/path when path is relative and dir given, else path; malloc'd, NULL
 * when out of memory. */
char *fx_path_from(const char *dir, const char *path);

/* Seconds on the monotonic clock (for durations and rates). */
double fx_now_s(void);

#ifdef __cplusplus
}
#endif
#endif
