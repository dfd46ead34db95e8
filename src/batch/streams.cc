#include "src/batch/streams.h"

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <streambuf>
#include <vector>

namespace keel::batch::internal {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// gzip (and zlib) decompression through zlib's gzFile.
class GzipBuf : public std::streambuf {
 public:
  explicit GzipBuf(gzFile f) : f_(f), buf_(1 << 16) {}
  ~GzipBuf() override { gzclose(f_); }
  std::string error;

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    const int n = gzread(f_, buf_.data(), static_cast<unsigned>(buf_.size()));
    if (n < 0) {
      int code = 0;
      error = std::string("gzip: ") + gzerror(f_, &code);
      return traits_type::eof();
    }
    if (n == 0) {
      // zlib reports a stream cut short only through gzerror at the end.
      int code = Z_OK;
      const char* message = gzerror(f_, &code);
      if (code != Z_OK && code != Z_STREAM_END) error = std::string("gzip: ") + message;
      return traits_type::eof();
    }
    setg(buf_.data(), buf_.data(), buf_.data() + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  gzFile f_;
  std::vector<char> buf_;
};

// zstd decompression of a file, frame after frame.
class ZstdBuf : public std::streambuf {
 public:
  explicit ZstdBuf(std::ifstream in)
      : in_(std::move(in)),
        ds_(ZSTD_createDStream()),
        inbuf_(ZSTD_DStreamInSize()),
        outbuf_(ZSTD_DStreamOutSize()) {}
  ~ZstdBuf() override { ZSTD_freeDStream(ds_); }
  std::string error;

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    for (;;) {
      if (input_.pos == input_.size) {
        in_.read(inbuf_.data(), static_cast<std::streamsize>(inbuf_.size()));
        const size_t got = static_cast<size_t>(in_.gcount());
        if (got == 0) {
          if (last_ != 0) error = "zstd: truncated input";
          return traits_type::eof();
        }
        input_ = {inbuf_.data(), got, 0};
      }
      ZSTD_outBuffer out{outbuf_.data(), outbuf_.size(), 0};
      last_ = ZSTD_decompressStream(ds_, &out, &input_);
      if (ZSTD_isError(last_)) {
        error = std::string("zstd: ") + ZSTD_getErrorName(last_);
        return traits_type::eof();
      }
      if (out.pos > 0) {
        setg(outbuf_.data(), outbuf_.data(), outbuf_.data() + out.pos);
        return traits_type::to_int_type(*gptr());
      }
    }
  }

 private:
  std::ifstream in_;
  ZSTD_DStream* ds_;
  std::vector<char> inbuf_, outbuf_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t last_ = 0;  // 0 after a complete frame
};

class PlainInput : public InputStream {
 public:
  explicit PlainInput(std::ifstream f) : f_(std::move(f)) {}
  std::istream& stream() override { return f_; }
  std::string error() const override { return {}; }

 private:
  std::ifstream f_;
};

class StdinInput : public InputStream {
 public:
  std::istream& stream() override { return std::cin; }
  std::string error() const override { return {}; }
};

template <typename Buf>
class BufInput : public InputStream {
 public:
  explicit BufInput(std::unique_ptr<Buf> buf) : buf_(std::move(buf)), in_(buf_.get()) {}
  std::istream& stream() override { return in_; }
  std::string error() const override { return buf_->error; }

 private:
  std::unique_ptr<Buf> buf_;
  std::istream in_;
};

class FileSink : public OutputSink {
 public:
  FileSink(std::ofstream f, std::string path) : f_(std::move(f)), path_(std::move(path)) {}
  Status Write(std::string_view b) override {
    f_.write(b.data(), static_cast<std::streamsize>(b.size()));
    return f_ ? OkStatus() : Unavailable("cannot write " + path_);
  }
  Status Close() override {
    f_.close();
    return f_ ? OkStatus() : Unavailable("cannot write " + path_);
  }

 private:
  std::ofstream f_;
  std::string path_;
};

class StdoutSink : public OutputSink {
 public:
  Status Write(std::string_view b) override {
    return std::fwrite(b.data(), 1, b.size(), stdout) == b.size()
               ? OkStatus()
               : Unavailable("cannot write to stdout");
  }
  Status Close() override {
    return std::fflush(stdout) == 0 ? OkStatus() : Unavailable("cannot write to stdout");
  }
};

class GzipSink : public OutputSink {
 public:
  GzipSink(gzFile f, std::string path) : f_(f), path_(std::move(path)) {}
  ~GzipSink() override {
    if (f_ != nullptr) gzclose(f_);
  }
  Status Write(std::string_view b) override {
    if (!b.empty() && gzwrite(f_, b.data(), static_cast<unsigned>(b.size())) == 0) {
      return Unavailable("cannot write " + path_);
    }
    return OkStatus();
  }
  Status Close() override {
    const int rc = gzclose(f_);
    f_ = nullptr;
    return rc == Z_OK ? OkStatus() : Unavailable("cannot write " + path_);
  }

 private:
  gzFile f_;
  std::string path_;
};

class ZstdSink : public OutputSink {
 public:
  ZstdSink(std::ofstream f, std::string path)
      : f_(std::move(f)),
        path_(std::move(path)),
        cs_(ZSTD_createCCtx()),
        out_(ZSTD_CStreamOutSize()) {}
  ~ZstdSink() override { ZSTD_freeCCtx(cs_); }
  Status Write(std::string_view b) override { return Drive(b, ZSTD_e_continue); }
  Status Close() override {
    KEEL_RETURN_IF_ERROR(Drive({}, ZSTD_e_end));
    f_.close();
    return f_ ? OkStatus() : Unavailable("cannot write " + path_);
  }

 private:
  Status Drive(std::string_view b, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{b.data(), b.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const size_t left = ZSTD_compressStream2(cs_, &out, &in, mode);
      if (ZSTD_isError(left)) return Internal(std::string("zstd: ") + ZSTD_getErrorName(left));
      f_.write(out_.data(), static_cast<std::streamsize>(out.pos));
      if (!f_) return Unavailable("cannot write " + path_);
      const bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
      if (done) return OkStatus();
    }
  }

  std::ofstream f_;
  std::string path_;
  ZSTD_CCtx* cs_;
  std::vector<char> out_;
};

}  // namespace

Codec CodecOf(std::string_view path) {
  if (EndsWith(path, ".gz")) return Codec::kGzip;
  if (EndsWith(path, ".zst") || EndsWith(path, ".zstd")) return Codec::kZstd;
  return Codec::kNone;
}

std::string_view WithoutCodecExtension(std::string_view path) {
  for (std::string_view ext : {".gz", ".zst", ".zstd"}) {
    if (EndsWith(path, ext)) return path.substr(0, path.size() - ext.size());
  }
  return path;
}

Result<std::unique_ptr<InputStream>> InputStream::Open(const std::string& path) {
  if (path == "-") return std::unique_ptr<InputStream>(std::make_unique<StdinInput>());
  std::ifstream f(path, std::ios::binary);
  if (!f) return InvalidArgument("cannot open " + path);
  switch (CodecOf(path)) {
    case Codec::kGzip: {
      f.close();
      gzFile g = gzopen(path.c_str(), "rb");
      if (g == nullptr) return InvalidArgument("cannot open " + path);
      gzbuffer(g, 1 << 17);
      return std::unique_ptr<InputStream>(
          std::make_unique<BufInput<GzipBuf>>(std::make_unique<GzipBuf>(g)));
    }
    case Codec::kZstd:
      return std::unique_ptr<InputStream>(
          std::make_unique<BufInput<ZstdBuf>>(std::make_unique<ZstdBuf>(std::move(f))));
    case Codec::kNone:
      break;
  }
  return std::unique_ptr<InputStream>(std::make_unique<PlainInput>(std::move(f)));
}

Result<std::unique_ptr<OutputSink>> OutputSink::Create(const std::string& path, Codec codec) {
  if (codec == Codec::kGzip) {
    gzFile g = gzopen(path.c_str(), "wb6");
    if (g == nullptr) return InvalidArgument("cannot write " + path);
    gzbuffer(g, 1 << 17);
    return std::unique_ptr<OutputSink>(std::make_unique<GzipSink>(g, path));
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return InvalidArgument("cannot write " + path);
  if (codec == Codec::kZstd) {
    return std::unique_ptr<OutputSink>(std::make_unique<ZstdSink>(std::move(f), path));
  }
  return std::unique_ptr<OutputSink>(std::make_unique<FileSink>(std::move(f), path));
}

std::unique_ptr<OutputSink> OutputSink::Stdout() { return std::make_unique<StdoutSink>(); }

}  // namespace keel::batch::internal
