// Reading and writing whole files safely: the one place every reader and writer
// of the library goes through.
//
// Reading: only a regular file is read (a FIFO would block forever, /dev/zero grow
// memory without bound, a directory fail obscurely), and only up to a size the
// caller names.
//
// Writing: a temporary file beside the target, flushed to disk, renamed over the
// target, and the directory flushed too, so a crash leaves the old file or the new
// one, never half of one. Only a regular file is replaced (saving "over" /dev/null
// or a FIFO is refused); a symbolic link is followed, and the file it points to is
// replaced; the replaced file's permission bits are kept. Temporaries that a killed
// save left behind (`NAME.tmp.PID` of a process that no longer runs) are removed by
// the next save to the same place.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cnn/error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace cnn {

/// A file that cannot be read or written as asked: the message names the file and the problem.
struct file_error : error {
    using error::error;
};

namespace detail {

/// What `path` is, following symbolic links; a link loop or another failure of the file
/// system is a file_error naming the path, not a std::filesystem_error.
template <class Error>
std::filesystem::file_status file_status(const std::filesystem::path& path) {
    std::error_code error;
    const std::filesystem::file_status status = std::filesystem::status(path, error);
    if (error && status.type() != std::filesystem::file_type::not_found)
        throw Error(path.string() + ": " + error.message());
    return status;
}

inline const char* type_name(std::filesystem::file_type type) {
    switch (type) {
        case std::filesystem::file_type::directory: return "a directory";
        case std::filesystem::file_type::fifo: return "a FIFO";
        case std::filesystem::file_type::character: return "a character device";
        case std::filesystem::file_type::block: return "a block device";
        case std::filesystem::file_type::socket: return "a socket";
        default: return "not a regular file";
    }
}

}  // namespace detail

/// The bytes of the regular file `path`, which may hold at most `max_size` bytes. `what`
/// names the kind of file for messages ("model file"). Throws Error (cnn::file_error, or
/// the error type of the caller's file format).
template <class Error = file_error>
std::vector<std::uint8_t> read_file(const std::filesystem::path& path, std::uint64_t max_size,
                                           const std::string& what = "file") {
    const std::string name = path.string();
    const std::filesystem::file_status status = detail::file_status<Error>(path);
    if (status.type() == std::filesystem::file_type::not_found) throw Error(name + ": no such file");
    if (status.type() != std::filesystem::file_type::regular)
        throw Error(name + ": is " + detail::type_name(status.type()) + ", not a " + what);
    std::error_code error;
    const std::uint64_t size = std::filesystem::file_size(path, error);
    if (error) throw Error(name + ": cannot read its size: " + error.message());
    if (size > max_size)
        throw Error(name + ": is " + std::to_string(size) + " bytes, more than a " + what + " can be (" +
                         std::to_string(max_size) + ")");
    std::ifstream file(path, std::ios::binary);
    if (!file) throw Error(name + ": cannot open: " + std::strerror(errno));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    if (static_cast<std::uint64_t>(file.gcount()) != size)
        throw Error(name + ": cannot read: it changed while being read");
    return bytes;
}

namespace detail {

/// The file a save to `path` replaces: `path` itself, or what a symbolic link there points
/// to (relative links resolved from the link's directory). Throws file_error when that is
/// something other than a regular file or nothing.
template <class Error>
std::filesystem::path save_target(const std::filesystem::path& path) {
    std::filesystem::path target = path;
    std::error_code error;
    if (std::filesystem::is_symlink(path, error)) {
        target = std::filesystem::read_symlink(path, error);
        if (error) throw Error(path.string() + ": cannot read the symbolic link: " + error.message());
        if (target.is_relative()) target = path.parent_path() / target;
    }
    const std::filesystem::file_status status = file_status<Error>(target);
    if (status.type() != std::filesystem::file_type::not_found && status.type() != std::filesystem::file_type::regular)
        throw Error(path.string() + ": is " + type_name(status.type()) +
                         "; only a regular file is replaced by a save");
    return target;
}

/// Removes `target`.tmp.PID files whose process no longer runs (left by a killed save).
inline void remove_stale_temporaries(const std::filesystem::path& target) {
#if defined(__unix__) || defined(__APPLE__)
    const std::filesystem::path directory = target.has_parent_path() ? target.parent_path() : ".";
    const std::string prefix = target.filename().string() + ".tmp.";
    std::error_code error;
    for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
        const std::string name = it->path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string digits = name.substr(prefix.size());
        if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto pid = static_cast<pid_t>(std::stol(digits));
        if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) {
            std::error_code ignored;
            std::filesystem::remove(it->path(), ignored);
        }
    }
#else
    (void)target;
#endif
}

inline std::filesystem::path temporary_for(const std::filesystem::path& target) {
    std::filesystem::path temporary = target;
    std::string suffix = ".tmp";
#if defined(__unix__) || defined(__APPLE__)
    suffix += '.';
    suffix += std::to_string(::getpid());  // two processes saving at once do not share one
#endif
    temporary += suffix;
    return temporary;
}

}  // namespace detail

/// Throws cnn::file_error unless a save to `path` could be made now: the place is not
/// something other than a regular file, and its directory takes a new file. For programs
/// that should learn this before hours of work rather than after.
inline void check_writable(const std::filesystem::path& path) {
    const std::filesystem::path target = detail::save_target<file_error>(path);
    const std::filesystem::path temporary = detail::temporary_for(target);
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr)
        throw file_error(path.string() + ": cannot be written (" + std::strerror(errno) + " creating a file in " +
                         (target.has_parent_path() ? target.parent_path().string() : std::string(".")) + ")");
    std::fclose(file);
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
}

/// Writes `bytes` to `path` through a temporary file and an atomic rename (see the top of
/// this file). Throws Error naming the file; the previous file is then unchanged.
template <class Error = file_error>
void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
    const std::string name = path.string();
    const std::filesystem::path target = detail::save_target<Error>(path);
    detail::remove_stale_temporaries(target);
    const std::filesystem::path temporary = detail::temporary_for(target);
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) throw Error(name + ": cannot create " + temporary.string() + ": " + std::strerror(errno));
    bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size() && std::fflush(file) == 0;
#if defined(__unix__) || defined(__APPLE__)
    struct stat old {};
    if (ok && ::stat(target.c_str(), &old) == 0) ok = ::fchmod(::fileno(file), old.st_mode & 07777) == 0;
    ok = ok && ::fsync(::fileno(file)) == 0;
#endif
    const int saved_errno = errno;
    ok = (std::fclose(file) == 0) && ok;
    if (!ok) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw Error(name + ": writing failed (" + std::strerror(saved_errno) + "); the previous file is unchanged");
    }
    std::error_code rename_error;
    std::filesystem::rename(temporary, target, rename_error);
    if (rename_error) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw Error(name + ": cannot replace it: " + rename_error.message() + "; the previous file is unchanged");
    }
#if defined(__unix__) || defined(__APPLE__)
    // Make the rename itself durable.
    const std::filesystem::path directory = target.has_parent_path() ? target.parent_path() : ".";
    const int dir = ::open(directory.c_str(), O_RDONLY);
    if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
#endif
}

template <class Error = file_error>
void write_file_atomically(const std::filesystem::path& path, std::string_view text) {
    write_file_atomically<Error>(path, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

}  // namespace cnn
