// A lower bound for reading the drift benchmark's CSV files: the file mapped
// (page cache warm), cut in two at a line end, and every field of each half
// parsed by std::from_chars on its own thread, the numbers summed and
// nothing stored (no columns, no categories, no type inference, no errors
// with line numbers). Text fields (the categories) are skipped. What
// `keel drift` spends on reading beyond this is the price of building the
// table. Usage: keel_parse_floor_bench FILE.csv [repeats]
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

struct Half {
  double sum = 0;
  size_t numbers = 0;
};

Half ParseRange(const char* p, const char* end) {
  Half h;
  while (p < end) {
    double v;
    const auto r = std::from_chars(p, end, v);
    if (r.ec == std::errc() && (r.ptr == end || *r.ptr == ',' || *r.ptr == '\n')) {
      h.sum += v;
      ++h.numbers;
      p = r.ptr;
    } else {
      while (p < end && *p != ',' && *p != '\n') ++p;
    }
    ++p;  // the delimiter or line end
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.csv [repeats]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  const int fd = open(argv[1], O_RDONLY);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
    std::fprintf(stderr, "%s: cannot read\n", argv[1]);
    return 1;
  }
  const auto size = static_cast<size_t>(st.st_size);
  double best = 1e9;
  Half total;
  for (int k = 0; k < repeats; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) return 1;
    const char* base = static_cast<const char*>(map);
    const char* end = base + size;
    const char* body = static_cast<const char*>(std::memchr(base, '\n', size));
    body = body == nullptr ? end : body + 1;  // after the header
    const char* mid = static_cast<const char*>(
        std::memchr(body + (end - body) / 2, '\n', static_cast<size_t>(end - body) / 2));
    mid = mid == nullptr ? end : mid + 1;
    Half a, b;
    std::thread other([&] { b = ParseRange(mid, end); });
    a = ParseRange(body, mid);
    other.join();
    munmap(map, size);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
    total = {a.sum + b.sum, a.numbers + b.numbers};
  }
  close(fd);
  std::printf("%zu numbers parsed on 2 threads in %.3f s (best of %d; sum %.6g)\n", total.numbers,
              best, repeats, total.sum);
  return 0;
}
