// The DICOM loader's GDCM side: decode the pixel data from memory (the
// header is read in C by src/io/dicom_check.c).  See
// src/io/dicom_internal.h.  Every GDCM exception and failure becomes a
// return of -1 with a message; nothing escapes into C.
#include "io/dicom_internal.h"

#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

namespace {

// A read-only stream over the caller's bytes: no copy of the file.
struct MemBuf : std::streambuf {
    MemBuf(const uint8_t *b, size_t n)
    {
        char *p = const_cast<char *>(reinterpret_cast<const char *>(b));
        setg(p, p, p + n);
    }
    pos_type seekoff(off_type off, std::ios_base::seekdir dir,
                     std::ios_base::openmode) override
    {
        char *target = dir == std::ios_base::beg ? eback() + off
                       : dir == std::ios_base::cur ? gptr() + off
                                                   : egptr() + off;
        if (target < eback() || target > egptr())
            return pos_type(off_type(-1));
        setg(eback(), target, egptr());
        return pos_type(target - eback());
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode m) override
    {
        return seekoff(off_type(pos), std::ios_base::beg, m);
    }
};

// GDCM prints warnings and errors to stderr; ours travel in the row.
struct Quiet {
    Quiet()
    {
        gdcm::Trace::DebugOff();
        gdcm::Trace::WarningOff();
        gdcm::Trace::ErrorOff();
    }
};
const Quiet quiet;

void fail(char *msg, size_t n, const char *what)
{
    std::snprintf(msg, n, "%s", what);
}

} // namespace

extern "C" int fx_dcm_decode_frame0(const uint8_t *bytes, size_t n, const fx_dcm_header *h,
                                    void *raw, char *msg, size_t msgn)
{
    try {
        MemBuf mb(bytes, n);
        std::istream is(&mb);
        gdcm::ImageReader r;
        r.SetStream(is);
        if (!r.Read()) {
            fail(msg, msgn, "dicom: GDCM cannot read the image (damaged, or no image module)");
            return -1;
        }
        const gdcm::Image &img = r.GetImage();
        const unsigned *d = img.GetDimensions();
        const gdcm::PixelFormat &pf = img.GetPixelFormat();
        if (!d || (int)d[0] != h->width || (int)d[1] != h->height ||
            pf.GetBitsAllocated() != h->bits_alloc || pf.GetSamplesPerPixel() != 1) {
            fail(msg, msgn, "dicom: the decoded image does not match its header");
            return -1;
        }
        size_t len = img.GetBufferLength();
        size_t frame = (size_t)h->width * (size_t)h->height * (size_t)(h->bits_alloc / 8);
        if (len > ((size_t)1 << 31) && len / frame > 1) {
            // GDCM decodes every frame; a multi-frame file this large is not a radiograph.
            std::snprintf(msg, msgn, "dicom: %d frames of %d x %d: more than 2 GiB to decode",
                          h->frames, h->width, h->height);
            return -1;
        }
        if (len < frame) {
            fail(msg, msgn, "dicom: pixel data shorter than one frame");
            return -1;
        }
        // One frame decodes straight into the caller's buffer; several need
        // room for all of them first (GDCM decodes every frame).
        std::vector<char> buf(len > frame ? len : 0);
        if (!img.GetBuffer(len > frame ? buf.data() : static_cast<char *>(raw))) {
            std::snprintf(msg, msgn, "dicom: cannot decode the pixel data (transfer syntax %s)",
                          h->ts_uid);
            return -1;
        }
        if (len > frame)
            std::memcpy(raw, buf.data(), frame);
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(msg, msgn, "dicom: %s", e.what());
    } catch (...) {
        fail(msg, msgn, "dicom: GDCM failed to decode the file");
    }
    return -1;
}
