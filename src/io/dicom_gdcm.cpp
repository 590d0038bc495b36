// The DICOM loader's GDCM side: parse and decode from memory.  See
// src/io/dicom_internal.h.  Every GDCM exception and failure becomes a
// return of -1 with a message; nothing escapes into C.
#include "io/dicom_internal.h"

#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmStringFilter.h>
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

void copy_str(char *dst, size_t n, const std::string &s)
{
    std::string t = s;
    while (!t.empty() && (t.back() == ' ' || t.back() == '\0'))
        t.pop_back(); // DICOM pads values to even length
    size_t k = t.size() < n - 1 ? t.size() : n - 1;
    std::memcpy(dst, t.data(), k);
    dst[k] = 0;
}

std::string tag_str(const gdcm::DataSet &ds, const gdcm::StringFilter &sf, uint16_t g, uint16_t e)
{
    gdcm::Tag t(g, e);
    if (!ds.FindDataElement(t) || ds.GetDataElement(t).IsEmpty())
        return std::string();
    return sf.ToString(t);
}

// The first value of a multi-valued numeric string ("40\\400" -> 40).
bool first_number(const std::string &s, double *v)
{
    if (s.empty())
        return false;
    char *end = nullptr;
    *v = std::strtod(s.c_str(), &end);
    return end != s.c_str();
}

bool two_numbers(const std::string &s, double *a, double *b)
{
    size_t bs = s.find('\\');
    if (bs == std::string::npos)
        return false;
    return first_number(s.substr(0, bs), a) && first_number(s.substr(bs + 1), b);
}

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

extern "C" int fx_dcm_read_header(const uint8_t *bytes, size_t n, fx_dcm_header *h, char *msg,
                                  size_t msgn)
{
    std::memset(h, 0, sizeof *h);
    try {
        MemBuf mb(bytes, n);
        std::istream is(&mb);
        gdcm::Reader r; // the data set; pixel data stays undecoded
        r.SetStream(is);
        if (!r.Read()) {
            fail(msg, msgn, "dicom: not a readable DICOM file (damaged or truncated)");
            return -1;
        }
        const gdcm::File &f = r.GetFile();
        const gdcm::DataSet &ds = f.GetDataSet();
        gdcm::StringFilter sf;
        sf.SetFile(f);
        copy_str(h->sop_class, sizeof h->sop_class, tag_str(ds, sf, 0x0008, 0x0016));
        copy_str(h->sop_instance, sizeof h->sop_instance, tag_str(ds, sf, 0x0008, 0x0018));
        copy_str(h->study, sizeof h->study, tag_str(ds, sf, 0x0020, 0x000D));
        copy_str(h->series, sizeof h->series, tag_str(ds, sf, 0x0020, 0x000E));
        copy_str(h->accession, sizeof h->accession, tag_str(ds, sf, 0x0008, 0x0050));
        copy_str(h->modality, sizeof h->modality, tag_str(ds, sf, 0x0008, 0x0060));
        copy_str(h->body_part, sizeof h->body_part, tag_str(ds, sf, 0x0018, 0x0015));
        copy_str(h->view_position, sizeof h->view_position, tag_str(ds, sf, 0x0018, 0x5101));
        const gdcm::TransferSyntax &ts = f.GetHeader().GetDataSetTransferSyntax();
        copy_str(h->ts_uid, sizeof h->ts_uid, ts.GetString() ? ts.GetString() : "");
        copy_str(h->ts_name, sizeof h->ts_name,
                 gdcm::TransferSyntax::GetTSString(ts) ? gdcm::TransferSyntax::GetTSString(ts) : "");
        {
            const gdcm::FileMetaInformation &fmi = f.GetHeader();
            gdcm::Tag tsu(0x0002, 0x0010);
            if (fmi.FindDataElement(tsu)) {
                const gdcm::ByteValue *bv = fmi.GetDataElement(tsu).GetByteValue();
                if (bv)
                    copy_str(h->ts_uid, sizeof h->ts_uid, std::string(bv->GetPointer(), bv->GetLength()));
            }
        }
        h->has_pixels = ds.FindDataElement(gdcm::Tag(0x7FE0, 0x0010));
        double v = 0, a = 0, b = 0;
        h->width = first_number(tag_str(ds, sf, 0x0028, 0x0011), &v) ? (int)v : 0;
        h->height = first_number(tag_str(ds, sf, 0x0028, 0x0010), &v) ? (int)v : 0;
        h->frames = first_number(tag_str(ds, sf, 0x0028, 0x0008), &v) && v >= 1 ? (int)v : 1;
        h->samples = first_number(tag_str(ds, sf, 0x0028, 0x0002), &v) ? (int)v : 1;
        h->bits_alloc = first_number(tag_str(ds, sf, 0x0028, 0x0100), &v) ? (int)v : 0;
        h->bits_stored = first_number(tag_str(ds, sf, 0x0028, 0x0101), &v) ? (int)v : h->bits_alloc;
        h->high_bit = first_number(tag_str(ds, sf, 0x0028, 0x0102), &v) ? (int)v : h->bits_stored - 1;
        h->is_signed = first_number(tag_str(ds, sf, 0x0028, 0x0103), &v) && v == 1;
        h->slope = first_number(tag_str(ds, sf, 0x0028, 0x1053), &v) && v != 0 ? v : 1.0;
        h->intercept = first_number(tag_str(ds, sf, 0x0028, 0x1052), &v) ? v : 0.0;
        if (first_number(tag_str(ds, sf, 0x0028, 0x1050), &a) &&
            first_number(tag_str(ds, sf, 0x0028, 0x1051), &b) && b >= 1) {
            h->has_window = 1;
            h->win_center = a, h->win_width = b;
        }
        copy_str(h->photometric, sizeof h->photometric, tag_str(ds, sf, 0x0028, 0x0004));
        if (two_numbers(tag_str(ds, sf, 0x0028, 0x0030), &a, &b) ||
            two_numbers(tag_str(ds, sf, 0x0018, 0x1164), &a, &b)) {
            h->spacing_row = a, h->spacing_col = b;
        }
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(msg, msgn, "dicom: %s", e.what());
    } catch (...) {
        fail(msg, msgn, "dicom: GDCM failed to parse the file");
    }
    return -1;
}

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
        std::vector<char> buf(len);
        if (!img.GetBuffer(buf.data())) {
            std::snprintf(msg, msgn, "dicom: cannot decode the pixel data (transfer syntax %s)",
                          h->ts_uid);
            return -1;
        }
        std::memcpy(raw, buf.data(), frame);
        return 0;
    } catch (const std::exception &e) {
        std::snprintf(msg, msgn, "dicom: %s", e.what());
    } catch (...) {
        fail(msg, msgn, "dicom: GDCM failed to decode the file");
    }
    return -1;
}
