// The export format table, export names, and the atomic, durable directory
// writer. The generators themselves live in codegen_c.cc (c, cpp-header) and
// codegen_mlflow.cc (mlflow).
#include "keel/model/codegen.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <set>
#include <system_error>

#include "keel/core/util.h"

namespace keel::model {
namespace fs = std::filesystem;

namespace {

// C99 and C++17 keywords plus the names the generated code itself uses
// without a prefix, so that no export name or field can collide with them.
constexpr std::string_view kReserved[] = {
    "auto",         "break",         "case",        "char",      "const",
    "continue",     "default",       "do",          "double",    "else",
    "enum",         "extern",        "float",       "for",       "goto",
    "if",           "inline",        "int",         "long",      "register",
    "restrict",     "return",        "short",       "signed",    "sizeof",
    "static",       "struct",        "switch",      "typedef",   "union",
    "unsigned",     "void",          "volatile",    "while",     "_Bool",
    "_Complex",     "_Imaginary",    "alignas",     "alignof",   "and",
    "and_eq",       "asm",           "bitand",      "bitor",     "bool",
    "catch",        "char8_t",       "char16_t",    "char32_t",  "class",
    "compl",        "concept",       "consteval",   "constexpr", "constinit",
    "const_cast",   "co_await",      "co_return",   "co_yield",  "decltype",
    "delete",       "dynamic_cast",  "explicit",    "export",    "false",
    "friend",       "mutable",       "namespace",   "new",       "noexcept",
    "not",          "not_eq",        "nullptr",     "operator",  "or",
    "or_eq",        "private",       "protected",   "public",    "reinterpret_cast",
    "requires",     "static_assert", "static_cast", "template",  "this",
    "thread_local", "throw",         "true",        "try",       "typeid",
    "typename",     "using",         "virtual",     "wchar_t",   "xor",
    "xor_eq",       "std",           "detail",      "NAN",       "INFINITY",
    "errno",        "stdin",         "stdout",      "stderr",    "linux",
    "unix",         "i386",          "complex",     "imaginary", "math_errhandling",
};

// Math functions of C99/C23 <math.h> and glibc's, by base name: each is also
// declared with the suffixes of kMathSuffixes (ISO C reserves the f and l
// forms), and some with "_r".
constexpr std::string_view kStdMath[] = {
    "acos",
    "asin",
    "atan",
    "atan2",
    "cos",
    "sin",
    "tan",
    "acosh",
    "asinh",
    "atanh",
    "cosh",
    "sinh",
    "tanh",
    "exp",
    "exp2",
    "exp10",
    "expm1",
    "frexp",
    "ilogb",
    "llogb",
    "ldexp",
    "log",
    "log10",
    "log1p",
    "log2",
    "logb",
    "modf",
    "scalbn",
    "scalbln",
    "scalb",
    "cbrt",
    "fabs",
    "abs",
    "hypot",
    "pow",
    "sqrt",
    "erf",
    "erfc",
    "lgamma",
    "tgamma",
    "gamma",
    "ceil",
    "floor",
    "nearbyint",
    "rint",
    "lrint",
    "llrint",
    "round",
    "lround",
    "llround",
    "roundeven",
    "trunc",
    "fmod",
    "remainder",
    "remquo",
    "drem",
    "copysign",
    "nan",
    "nextafter",
    "nexttoward",
    "nextup",
    "nextdown",
    "fdim",
    "fmax",
    "fmin",
    "fma",
    "fmaxmag",
    "fminmag",
    "fmaximum",
    "fminimum",
    "fmaximum_num",
    "fminimum_num",
    "fmaximum_mag",
    "fminimum_mag",
    "fmaximum_mag_num",
    "fminimum_mag_num",
    "fromfp",
    "ufromfp",
    "fromfpx",
    "ufromfpx",
    "canonicalize",
    "totalorder",
    "totalordermag",
    "getpayload",
    "setpayload",
    "setpayloadsig",
    "significand",
    "finite",
    "isnan",
    "isinf",
    "isfinite",
    "isnormal",
    "signbit",
    "fpclassify",
    "isgreater",
    "isgreaterequal",
    "isless",
    "islessequal",
    "islessgreater",
    "isunordered",
    "issignaling",
    "issubnormal",
    "iszero",
    "iscanonical",
    "iseqsig",
    "j0",
    "j1",
    "jn",
    "y0",
    "y1",
    "yn",
    "sincos",
    "fadd",
    "fsub",
    "fmul",
    "fdiv",
    "ffma",
    "fsqrt",
    "dadd",
    "dsub",
    "dmul",
    "ddiv",
    "dfma",
    "dsqrt",
    "signgam",
    "div",
    "ldiv",
    "lldiv",
    "labs",
    "llabs",
};
constexpr std::string_view kMathSuffixes[] = {"",    "f",    "l",    "f16", "f32",
                                              "f64", "f128", "f32x", "f64x"};

// Other global names of the C standard library (<stdlib.h>, <stdio.h>,
// <string.h>, <ctype.h>, <time.h>, <signal.h>, <setjmp.h>, <stdarg.h>,
// <assert.h>, <stddef.h>), glibc's common extensions and a few POSIX ones an
// application is likely to include next to the generated header.
constexpr std::string_view kStdNames[] = {
    // stdlib
    "abort",
    "atexit",
    "at_quick_exit",
    "exit",
    "quick_exit",
    "getenv",
    "secure_getenv",
    "setenv",
    "unsetenv",
    "putenv",
    "clearenv",
    "system",
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "alloca",
    "atof",
    "atoi",
    "atol",
    "atoll",
    "strtod",
    "strtof",
    "strtold",
    "strtol",
    "strtoll",
    "strtoul",
    "strtoull",
    "strtoq",
    "strtouq",
    "rand",
    "srand",
    "random",
    "srandom",
    "rand_r",
    "drand48",
    "erand48",
    "lrand48",
    "nrand48",
    "mrand48",
    "jrand48",
    "srand48",
    "seed48",
    "lcong48",
    "qsort",
    "bsearch",
    "mblen",
    "mbtowc",
    "wctomb",
    "mbstowcs",
    "wcstombs",
    "mkstemp",
    "mkdtemp",
    "mktemp",
    "realpath",
    "ecvt",
    "fcvt",
    "gcvt",
    "a64l",
    "l64a",
    "initstate",
    "setstate",
    // stdio
    "FILE",
    "printf",
    "fprintf",
    "sprintf",
    "snprintf",
    "vprintf",
    "vfprintf",
    "vsprintf",
    "vsnprintf",
    "asprintf",
    "dprintf",
    "scanf",
    "fscanf",
    "sscanf",
    "vscanf",
    "vfscanf",
    "vsscanf",
    "puts",
    "fputs",
    "gets",
    "fgets",
    "putchar",
    "getchar",
    "putc",
    "getc",
    "fputc",
    "fgetc",
    "ungetc",
    "fopen",
    "fdopen",
    "freopen",
    "fclose",
    "fflush",
    "fread",
    "fwrite",
    "fseek",
    "fseeko",
    "ftell",
    "ftello",
    "rewind",
    "fgetpos",
    "fsetpos",
    "feof",
    "ferror",
    "clearerr",
    "fileno",
    "perror",
    "remove",
    "rename",
    "renameat",
    "tmpfile",
    "tmpnam",
    "tempnam",
    "setbuf",
    "setvbuf",
    "popen",
    "pclose",
    "getline",
    "getdelim",
    // string
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "memchr",
    "memccpy",
    "memmem",
    "mempcpy",
    "memrchr",
    "strcpy",
    "strncpy",
    "stpcpy",
    "strcat",
    "strncat",
    "strcmp",
    "strncmp",
    "strcasecmp",
    "strncasecmp",
    "strcoll",
    "strxfrm",
    "strchr",
    "strrchr",
    "strspn",
    "strcspn",
    "strpbrk",
    "strstr",
    "strtok",
    "strtok_r",
    "strlen",
    "strnlen",
    "strdup",
    "strndup",
    "strerror",
    "strsignal",
    "strsep",
    "index",
    "rindex",
    "bcmp",
    "bcopy",
    "bzero",
    "ffs",
    "basename",
    // ctype
    "isalnum",
    "isalpha",
    "isblank",
    "iscntrl",
    "isdigit",
    "isgraph",
    "islower",
    "isprint",
    "ispunct",
    "isspace",
    "isupper",
    "isxdigit",
    "isascii",
    "tolower",
    "toupper",
    "toascii",
    // time, signal, setjmp, stdarg, assert, stddef
    "time",
    "clock",
    "difftime",
    "mktime",
    "asctime",
    "ctime",
    "gmtime",
    "localtime",
    "strftime",
    "strptime",
    "timegm",
    "timezone",
    "daylight",
    "tzname",
    "tzset",
    "nanosleep",
    "tm",
    "timespec",
    "timeval",
    "signal",
    "raise",
    "kill",
    "sigaction",
    "sigset",
    "sigemptyset",
    "sigfillset",
    "sigaddset",
    "sigdelset",
    "sigismember",
    "sigprocmask",
    "setjmp",
    "longjmp",
    "jmp_buf",
    "sigsetjmp",
    "siglongjmp",
    "sigjmp_buf",
    "va_list",
    "va_start",
    "va_end",
    "va_arg",
    "va_copy",
    "assert",
    "offsetof",
    // POSIX and program-level names
    "environ",
    "optarg",
    "optind",
    "opterr",
    "optopt",
    "read",
    "write",
    "open",
    "close",
    "pipe",
    "fork",
    "sleep",
    "usleep",
    "access",
    "unlink",
    "link",
    "chdir",
    "getcwd",
    "getpid",
    "dup",
    "dup2",
    "select",
    "main",
    "posix",
    // upper-case macros not covered by the patterns in StdNameReason
    "NULL",
    "EOF",
    "BUFSIZ",
    "FOPEN_MAX",
    "TMP_MAX",
    "L_tmpnam",
    "SEEK_SET",
    "SEEK_CUR",
    "SEEK_END",
    "EXIT_SUCCESS",
    "EXIT_FAILURE",
    "MB_CUR_MAX",
    "MAXFLOAT",
    "CHAR_BIT",
    "CLOCKS_PER_SEC",
    "TIME_UTC",
    "DECIMAL_DIG",
    "MATH_ERRNO",
    "MATH_ERREXCEPT",
    "BIG_ENDIAN",
    "LITTLE_ENDIAN",
    "PDP_ENDIAN",
    "BYTE_ORDER",
    "NFDBITS",
    "FD_SETSIZE",
    "FD_SET",
    "FD_CLR",
    "FD_ISSET",
    "FD_ZERO",
    "WNOHANG",
    "WUNTRACED",
    "WEXITSTATUS",
    "WIFEXITED",
    "WIFSIGNALED",
    "WIFSTOPPED",
    "WSTOPSIG",
    "WTERMSIG",
    "WCONTINUED",
    "WEXITED",
    "WNOWAIT",
    "WSTOPPED",
    "WIFCONTINUED",
    "NSIG",
    "RENAME_EXCHANGE",
    "RENAME_NOREPLACE",
    "RENAME_WHITEOUT",
};

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
bool IsUpperOrDigit(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Why `name` would clash with a name the C or C++ standard library, glibc or
// POSIX declares or defines at global scope (cpp-header makes the export name
// a global namespace); empty when it does not.
std::string StdNameReason(std::string_view name) {
  if (EndsWith(name, "_t")) return "ends in \"_t\" (reserved for type names by POSIX)";
  for (std::string_view r : {std::string_view(""), std::string_view("_r")}) {
    if (!EndsWith(name, r)) continue;
    const std::string_view m = name.substr(0, name.size() - r.size());
    for (std::string_view base : kStdMath) {
      for (std::string_view sfx : kMathSuffixes) {
        if (m.size() == base.size() + sfx.size() && StartsWith(m, base) && EndsWith(m, sfx)) {
          return "is the name of a C math library function (" + std::string(base) + ")";
        }
      }
    }
  }
  if (std::find(std::begin(kStdNames), std::end(kStdNames), name) != std::end(kStdNames)) {
    return "is a name of the C standard library";
  }
  const bool all_caps =
      std::all_of(name.begin(), name.end(), [](char c) { return IsUpperOrDigit(c) || c == '_'; });
  for (std::string_view p :
       {"M_", "FP_", "FE_", "HUGE_VAL", "SNAN", "FLT_", "DBL_", "LDBL_", "LC_", "SIG_"}) {
    if (StartsWith(name, p))
      return "is reserved for the C library's macros (" + std::string(p) + "...)";
  }
  if (name.size() > 3 && (StartsWith(name, "PRI") || StartsWith(name, "SCN")) &&
      ((name[3] >= 'a' && name[3] <= 'z') || name[3] == 'X')) {
    return "is reserved for <inttypes.h> macros";
  }
  if (name.size() > 3 && StartsWith(name, "SIG") && name[3] >= 'A' && name[3] <= 'Z') {
    return "is reserved for <signal.h> macros";
  }
  if (all_caps && name.size() > 1 && name[0] == 'E' && IsUpperOrDigit(name[1])) {
    return "is reserved for <errno.h> macros (E followed by an upper-case letter or digit)";
  }
  if (all_caps && (EndsWith(name, "_MAX") || EndsWith(name, "_MIN") || EndsWith(name, "_WIDTH") ||
                   EndsWith(name, "_C"))) {
    return "is reserved for the C library's limit macros";
  }
  return "";
}

bool IsReserved(std::string_view s) {
  return std::find(std::begin(kReserved), std::end(kReserved), s) != std::end(kReserved);
}

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

Result<std::vector<ExportedFile>> GenerateCRow(const LoadedModel& m, const ExportOptions& o) {
  return GenerateC(m, o);
}
Result<std::vector<ExportedFile>> GenerateCppRow(const LoadedModel& m, const ExportOptions& o) {
  return GenerateCppHeader(m, o);
}
Result<std::vector<ExportedFile>> GenerateMlflowRow(const LoadedModel& m, const ExportOptions& o) {
  return GenerateMlflow(m, o);
}

// The errno of a failed file-system call as a Status naming `what`.
Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = what + ": " + std::generic_category().message(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return ResourceExhausted(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return PermissionDenied(msg);
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
      return FailedPrecondition(msg);
    case EEXIST:
    case ENOTEMPTY:
      return AlreadyExists(msg);
    case ENOENT:
      return NotFound(msg);
    default:
      return Internal(msg);
  }
}

Status EcStatus(const std::error_code& ec, const std::string& what) {
  return ErrnoStatus(ec.value(), what);
}

// Creates `path` (which must not exist), writes `bytes`, fsyncs and closes
// it, checking every step.
Status WriteFileDurably(const fs::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, path.string() + ": cannot create the file");
  size_t off = 0;
  while (off < bytes.size()) {
    const size_t chunk = std::min<size_t>(bytes.size() - off, size_t{1} << 30);
    const ssize_t n = ::write(fd, bytes.data() + off, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, path.string() + ": write failed");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, path.string() + ": fsync failed");
  }
  if (::close(fd) != 0) return ErrnoStatus(errno, path.string() + ": close failed");
  return OkStatus();
}

// fsyncs a directory, so the entries created or renamed in it are durable.
// EINVAL from fsync (a file system that cannot sync directories) counts as
// done, and so does a directory we may write but not open (EACCES: mode -wx),
// which cannot be synced by anyone but its owner; other errors are returned.
Status SyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) return OkStatus();
  if (fd < 0) return ErrnoStatus(errno, dir.string() + ": cannot open the directory to sync it");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) return ErrnoStatus(err, dir.string() + ": fsync failed");
  return OkStatus();
}

int RealRename(const char* from, const char* to) { return ::rename(from, to) == 0 ? 0 : errno; }

int RealExchange(const char* a, const char* b) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  return ::renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0 ? 0 : errno;
#else
  (void)a;
  (void)b;
  return ENOSYS;
#endif
}

uintmax_t RealRemoveAll(const fs::path& p, std::error_code& ec) { return fs::remove_all(p, ec); }

}  // namespace

namespace internal {
ExportFsHooks& ExportFsHooksForTest() {
  static ExportFsHooks hooks{&RealRename, &RealExchange, &RealRemoveAll};
  return hooks;
}
}  // namespace internal

namespace {

int Rename(const fs::path& from, const fs::path& to) {
  return internal::ExportFsHooksForTest().rename(from.c_str(), to.c_str());
}

// Removes `p` recursively; "" or why not.
std::string RemoveAll(const fs::path& p) {
  std::error_code ec;
  internal::ExportFsHooksForTest().remove_all(p, ec);
  return ec ? ec.message() : "";
}
}  // namespace

const std::vector<ExportFormat>& ExportFormats() {
  static const std::vector<ExportFormat> formats = {
      {"c", "dependency-free C99: NAME.h, NAME.c, README.md", &GenerateCRow},
      {"cpp-header", "one C++17 header with constexpr tables: NAME.hpp, README.md",
       &GenerateCppRow},
      {"mlflow", "MLflow model directory (xgboost + python_function flavors); XGBoost models only",
       &GenerateMlflowRow},
  };
  return formats;
}

const ExportFormat* FindExportFormat(std::string_view name) {
  for (const ExportFormat& f : ExportFormats()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string ExportFormatNames() {
  std::string out;
  for (const ExportFormat& f : ExportFormats()) {
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  return out;
}

std::string SanitizeIdentifier(std::string_view text) {
  std::string out;
  for (char c : text) {
    char d = IsIdentChar(c) ? c : '_';
    if (d >= 'A' && d <= 'Z') d = static_cast<char>(d - 'A' + 'a');
    if (d == '_' && !out.empty() && out.back() == '_') continue;
    out += d;
  }
  while (!out.empty() && out.front() == '_') out.erase(0, 1);
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (out.empty()) return "x";
  if (out[0] >= '0' && out[0] <= '9') out = "m_" + out;
  if (IsReserved(out)) out += '_';
  return out;
}

std::string DefaultExportName(std::string_view model_name) {
  if (model_name.empty()) return "model";
  std::string s = SanitizeIdentifier(model_name);
  if (s.size() > 58) s.resize(58);
  while (!s.empty() && s.back() == '_') s.pop_back();
  if (s.size() < 5 || s.compare(s.size() - 5, 5, "model") != 0) s += "_model";
  return s;
}

Status CheckExportName(std::string_view name) {
  const std::string shown = "export name '" + std::string(name.substr(0, 80)) + "'";
  if (name.empty()) return InvalidArgument("the export name is empty");
  if (name.size() > 64) return InvalidArgument(shown + " is longer than 64 bytes");
  if (!std::all_of(name.begin(), name.end(), IsIdentChar) || (name[0] >= '0' && name[0] <= '9')) {
    return InvalidArgument(shown + " is not a C identifier ([A-Za-z_][A-Za-z0-9_]*)");
  }
  if (name[0] == '_') return InvalidArgument(shown + " starts with '_' (reserved in C)");
  if (IsReserved(name)) return InvalidArgument(shown + " is a C or C++ keyword");
  if (const std::string why = StdNameReason(name); !why.empty()) {
    return InvalidArgument(shown + " " + why +
                           "; the cpp-header format makes it a global namespace, which would "
                           "clash (choose another --name)");
  }
  return OkStatus();
}

Result<std::vector<ExportedFile>> GenerateExport(const LoadedModel& model, std::string_view format,
                                                 const ExportOptions& options) {
  const ExportFormat* f = FindExportFormat(format);
  if (f == nullptr) {
    return InvalidArgument("unknown export format '" + std::string(format) +
                           "' (known: " + ExportFormatNames() + ")");
  }
  ExportOptions resolved = options;
  if (resolved.name.empty()) resolved.name = DefaultExportName(options.model_name);
  KEEL_RETURN_IF_ERROR(CheckExportName(resolved.name));
  if (resolved.source.empty()) resolved.source = model.path.string();
  return f->generate(model, resolved);
}

Status WriteExport(const std::vector<ExportedFile>& files, const fs::path& dir_in, bool replace,
                   std::string* warning) {
  if (warning != nullptr) warning->clear();
  std::error_code ec;
  fs::path dir = dir_in;
  if (dir.filename().empty()) dir = dir.parent_path();  // "out/" -> "out"
  if (dir.empty()) return InvalidArgument("the output directory is empty");
  // Every directory the files need inside the export, deepest first.
  std::set<fs::path> subdirs;
  for (const ExportedFile& f : files) {
    const fs::path rel(f.path);
    if (f.path.empty() || rel.is_absolute() || rel.filename().empty() ||
        std::any_of(rel.begin(), rel.end(),
                    [](const fs::path& p) { return p == ".." || p == "."; })) {
      return Internal("export: bad generated file name '" + f.path + "'");
    }
    for (fs::path p = rel.parent_path(); !p.empty(); p = p.parent_path()) subdirs.insert(p);
  }
  std::vector<fs::path> subdirs_deepest_first(subdirs.begin(), subdirs.end());
  std::sort(subdirs_deepest_first.begin(), subdirs_deepest_first.end(),
            [](const fs::path& a, const fs::path& b) {
              return std::distance(a.begin(), a.end()) > std::distance(b.begin(), b.end());
            });

  const fs::file_status st = fs::status(dir, ec);
  if (ec && st.type() != fs::file_type::not_found) {
    return EcStatus(ec, dir.string() + ": cannot inspect the output directory");
  }
  const bool exists = fs::exists(st);
  if (exists && !fs::is_directory(st)) {
    return AlreadyExists(dir.string() + ": exists and is not a directory");
  }
  bool empty = false;
  if (exists) {
    empty = fs::is_empty(dir, ec);
    if (ec) return EcStatus(ec, dir.string() + ": cannot read the output directory");
    if (!replace && !empty) {
      return AlreadyExists(dir.string() + ": exists and is not empty (use --force to replace it)");
    }
  }

  // The parent, with every directory created on the way synced into its own parent.
  fs::path parent = dir.parent_path();
  if (parent.empty()) parent = ".";
  std::vector<fs::path> created;
  for (fs::path p = parent; !p.empty() && !fs::exists(p, ec) && !ec; p = p.parent_path()) {
    created.push_back(p);
    if (p == p.parent_path()) break;
  }
  fs::create_directories(parent, ec);
  if (ec) return EcStatus(ec, parent.string() + ": cannot create the directory");
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    const fs::path up = it->parent_path().empty() ? fs::path(".") : it->parent_path();
    KEEL_RETURN_IF_ERROR(SyncDir(up));
  }

  const std::string stem = dir.filename().string();
  const fs::path tmp = parent / (".tmp-" + stem + "-" + RandomHex(6));
  fs::create_directory(tmp, ec);
  if (ec) return EcStatus(ec, parent.string() + ": cannot create a directory here");
  // Removes the temporary directory; an error says so in the message.
  auto fail = [&](const Status& s) {
    const std::string why = RemoveAll(tmp);
    if (why.empty()) return s;
    return Status(s.code(), s.message() + "; the temporary directory " + tmp.string() +
                                " could not be removed: " + why);
  };
  for (const fs::path& sub : subdirs) {
    fs::create_directory(tmp / sub, ec);
    if (ec) return fail(EcStatus(ec, (tmp / sub).string() + ": cannot create the directory"));
  }
  for (const ExportedFile& f : files) {
    if (Status s = WriteFileDurably(tmp / fs::path(f.path), f.contents); !s.ok()) return fail(s);
  }
  for (const fs::path& sub : subdirs_deepest_first) {
    if (Status s = SyncDir(tmp / sub); !s.ok()) return fail(s);
  }
  if (Status s = SyncDir(tmp); !s.ok()) return fail(s);

  fs::path leftover;  // the previous export, to remove once the new one is in place
  if (!exists || empty) {
    // rename(2) replaces an empty directory in one step.
    if (const int err = Rename(tmp, dir); err != 0) {
      return fail(
          ErrnoStatus(err, dir.string() + ": cannot rename " + tmp.string() + " into place"));
    }
  } else if (const int err = internal::ExportFsHooksForTest().exchange(tmp.c_str(), dir.c_str());
             err == 0) {
    leftover = tmp;  // the exchange left the previous export under the temporary name
  } else if (err != EINVAL && err != ENOSYS && err != ENOTSUP && err != EOPNOTSUPP) {
    return fail(ErrnoStatus(err, dir.string() + ": cannot swap in the new export"));
  } else {
    // No RENAME_EXCHANGE here: move the previous export aside, then the new one in.
    const fs::path old = parent / (".old-" + stem + "-" + RandomHex(6));
    if (const int e1 = Rename(dir, old); e1 != 0) {
      return fail(ErrnoStatus(e1, dir.string() + ": cannot move the previous export aside"));
    }
    if (const int e2 = Rename(tmp, dir); e2 != 0) {
      const Status s =
          ErrnoStatus(e2, dir.string() + ": cannot rename " + tmp.string() + " into place");
      if (const int e3 = Rename(old, dir); e3 != 0) {
        return fail(Status(
            s.code(), s.message() + "; moving the previous export back failed too (" +
                          std::generic_category().message(e3) + "): it is in " + old.string()));
      }
      return fail(Status(s.code(), s.message() + "; the previous export is unchanged"));
    }
    leftover = old;
  }
  const Status synced = SyncDir(parent);
  std::string left;  // why the previous export could not be removed
  if (!leftover.empty()) {
    if (const std::string why = RemoveAll(leftover); !why.empty()) {
      left = "the previous export could not be removed entirely and remains in " +
             leftover.string() + ": " + why;
    }
  }
  if (!synced.ok()) {
    return Status(synced.code(), "the export is in " + dir.string() +
                                     " but its rename may not survive a crash: " +
                                     synced.message() + (left.empty() ? "" : "; " + left));
  }
  if (!left.empty() && warning != nullptr) {
    *warning = "the new export is in " + dir.string() + ", but " + left;
  }
  return OkStatus();
}

}  // namespace keel::model
