// Integration tests: cmake --install under any prefix, programs built against what it installed
// (through find_package and through pkg-config alone), the Debian package from cpack (its
// contents and fields, dpkg -i and -r in a root of its own), and the build's revision step.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/procfs.hpp"

using namespace test_support;
namespace fs = std::filesystem;

namespace {

// What tests/CMakeLists.txt tells about this build.
const std::string build_dir = STARTUP_SERVER_BUILD_DIR;
const std::string source_dir = STARTUP_SERVER_SOURCE_DIR;
const std::string project_version = STARTUP_SERVER_PROJECT_VERSION;

// The GNUInstallDirs folders, relative to the prefix.
struct install_dirs {
  std::string bin = STARTUP_SERVER_INSTALL_BINDIR;
  std::string lib = STARTUP_SERVER_INSTALL_LIBDIR;
  std::string include = STARTUP_SERVER_INSTALL_INCLUDEDIR;
  std::string data = STARTUP_SERVER_INSTALL_DATADIR;
  std::string man = STARTUP_SERVER_INSTALL_MANDIR;
};

// Every file the install puts in place, relative to the prefix: the command, its man page,
// completions, the example HAProxy configuration and systemd units, and the library (headers,
// archive, CMake package, pkg-config file).
std::vector<std::string> installed_files() {
  const install_dirs d;
  std::vector<std::string> files{
      d.bin + "/startup-server",
      d.man + "/man1/startup-server.1.gz",
      d.data + "/bash-completion/completions/startup-server",
      d.data + "/zsh/vendor-completions/_startup-server",
      d.data + "/fish/vendor_completions.d/startup-server.fish",
      d.data + "/doc/startup-server/examples/haproxy.cfg",
      d.data + "/doc/startup-server/examples/startup-server-echo.socket",
      d.data + "/doc/startup-server/examples/startup-server-echo.service",
      d.data + "/doc/startup-server/examples/startup-server-notify.service",
      d.lib + "/libstartup_server.a",
      d.lib + "/cmake/startup_server/startup_server-config.cmake",
      d.lib + "/cmake/startup_server/startup_server-config-version.cmake",
      d.lib + "/cmake/startup_server/startup_server-targets.cmake",
      d.lib + "/pkgconfig/startup_server.pc",
  };
  for (const auto& header : fs::directory_iterator(source_dir + "/include/startup_server"))
    files.push_back(d.include + "/startup_server/" + header.path().filename().string());
  return files;
}

constexpr milliseconds command_timeout{100000};

// Runs argv and requires it to succeed, showing its output if it does not.
run_result succeed(const std::vector<std::string>& argv) {
  std::string command = "$";
  for (const auto& word : argv) command += " " + word;
  run_result r = run_command(argv, command_timeout);
  INFO(command << "\nstdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
  return r;
}

bool have(const std::string& program) {
  return run_command({"/bin/sh", "-c", "command -v '" + program + "'"}, milliseconds(10000)).status == 0;
}

// Held while a test installs or packs this build. Both write into the build folder
// (cmake --install and cpack's staging install rewrite its install_manifest.txt), so under
// ctest -j the tests take turns there: an flock(2) on a file beside the manifest, released
// when the lock is destroyed (or the test process ends).
class build_lock {
 public:
  build_lock() : fd_(::open((build_dir + "/install-tests.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    INFO("opening " << build_dir << "/install-tests.lock: " << std::strerror(errno));
    REQUIRE(fd_ >= 0);
    // Bounded: a test holds it for one install or one cpack run.
    const bool locked = wait_until([this] { return ::flock(fd_, LOCK_EX | LOCK_NB) == 0; }, command_timeout,
                                   milliseconds(50));
    if (!locked) ::close(fd_);
    REQUIRE(locked);
  }
  ~build_lock() { ::close(fd_); }
  build_lock(const build_lock&) = delete;
  build_lock& operator=(const build_lock&) = delete;

 private:
  int fd_;
};

// cmake --install of this build into <dir>/prefix. The install folders must be relative, or
// the install would leave the prefix (and write into the system).
std::string install_into(const temp_dir& dir) {
  const std::string prefix = dir.file("prefix");
  const build_lock lock;
  succeed({STARTUP_SERVER_CMAKE, "--install", build_dir, "--prefix", prefix});
  return prefix;
}

// Whether this build can be packed and the package read here; if not, says why.
bool can_pack() {
  if (!STARTUP_SERVER_INSTALL_DIRS_RELATIVE) {
    WARN("an install folder (CMAKE_INSTALL_*DIR) is absolute: the package test is skipped");
    return false;
  }
  if (!have("dpkg") || !have("dpkg-deb") || !have("dpkg-shlibdeps")) {
    WARN("dpkg, dpkg-deb or dpkg-shlibdeps is missing (scripts/setup.sh installs dpkg-dev): the package test is skipped");
    return false;
  }
  return true;
}

// cpack -G DEB of this build into <dir>; returns the package's path.
std::string pack_into(const temp_dir& dir) {
  {
    const build_lock lock;
    succeed({STARTUP_SERVER_CPACK, "-G", "DEB", "--config", build_dir + "/CPackConfig.cmake", "-B", dir.path()});
  }
  std::string deb;
  for (const auto& entry : fs::directory_iterator(dir.path()))
    if (entry.path().extension() == ".deb") deb = entry.path().string();
  REQUIRE(!deb.empty());
  return deb;
}

// The fields of a Debian control file, by name; a value's continuation lines follow its first
// line, each after a '\n' and without the leading space.
std::map<std::string, std::string> control_fields(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::string* value = nullptr;
  for (const auto& line : split_lines(text)) {
    if (!line.empty() && line[0] == ' ' && value) {
      *value += "\n" + line.substr(1);
    } else if (const auto colon = line.find(':'); colon != std::string::npos) {
      const auto start = line.find_first_not_of(' ', colon + 1);
      value = &fields[line.substr(0, colon)];
      *value = start == std::string::npos ? std::string() : line.substr(start);
    }
  }
  return fields;
}

std::string field(const std::map<std::string, std::string>& fields, const std::string& name) {
  const auto it = fields.find(name);
  return it == fields.end() ? std::string() : it->second;
}

// The package names of a Depends field: "libc6 (>= 2.34), libfmt9 (>= 9.1.0)" gives libc6 and
// libfmt9 (of alternatives "a | b", the first).
std::set<std::string> package_names(const std::string& depends) {
  std::set<std::string> names;
  std::istringstream items(depends);
  for (std::string item; std::getline(items, item, ',');) {
    std::istringstream words(item);
    std::string name;
    if (words >> name) names.insert(name);
  }
  return names;
}

// dpkg acting on a root of the test's own: its database is <root>/var/lib/dpkg and its files
// go under <root>/usr, never into the system's, as root or as any other user.
std::vector<std::string> dpkg_in(const std::string& root, const std::vector<std::string>& action) {
  // dpkg insists on finding ldconfig and start-stop-daemon, which live in the sbin folders a
  // user's PATH may lack.
  const char* path = std::getenv("PATH");
  std::vector<std::string> argv{"env", "PATH=" + std::string(path && *path ? path : "/usr/bin:/bin") +
                                           ":/usr/local/sbin:/usr/sbin:/sbin",
                                "dpkg", "--root=" + root,
                                "--log=/dev/null",            // not the system's dpkg.log
                                "--force-not-root",           // a user may install into a folder of their own
                                "--force-script-chrootless",  // maintainer scripts, if any, without chroot(2)
                                "--force-depends",            // the root has none of the dependencies
                                "--path-include=*"};          // every file, whatever path-exclude the system's dpkg.cfg.d sets
  argv.insert(argv.end(), action.begin(), action.end());
  return argv;
}

// The installed man page is man/startup-server.1 as gzip -9n packs it: it unpacks to the source
// page, and its header (RFC 1952) holds no file name and no time stamp and marks the best
// compression, so every build installs the same bytes.
void check_man_page(const std::string& path) {
  const auto gz = read_file(path);
  INFO(path);
  REQUIRE(gz);
  REQUIRE(gz->size() > 10);
  CHECK(gz->substr(0, 3) == "\x1f\x8b\x08");        // gzip, deflate
  CHECK(((*gz)[3] & 0x08) == 0);                     // no FNAME
  CHECK(gz->substr(4, 4) == std::string(4, '\0'));  // MTIME 0
  CHECK((*gz)[8] == 2);                              // XFL: slowest, best compression
  const auto page = read_file(source_dir + "/man/startup-server.1");
  REQUIRE(page);
  CHECK(succeed({"gzip", "-dc", path}).out == *page);
}

// The revision cmake/git_revision.cmake writes for a source tree, run as the build runs it
// (git found on PATH); its output goes into out_dir.
std::string revision_for(const std::string& tree, const std::string& out_dir) {
  const std::string output = out_dir + "/git_revision.cpp";
  succeed({STARTUP_SERVER_CMAKE, "-DSOURCE_DIR=" + tree, "-DOUTPUT=" + output, "-P",
           source_dir + "/cmake/git_revision.cmake"});
  const auto text = read_file(output);
  REQUIRE(text);
  INFO(*text);
  static const std::regex returned(R"re(git_revision\(\) noexcept \{ return "([^"]*)"; \})re");
  std::smatch m;
  REQUIRE(std::regex_search(*text, m, returned));
  return m[1].str();
}

// The sanitizer presets build the library instrumented: a program linking it needs the same
// flags, so the consumers get this build's CMAKE_CXX_FLAGS and CMAKE_EXE_LINKER_FLAGS (empty
// in the release preset). That keeps these tests meaningful in every preset, and the
// consumers' server and client run under the same sanitizer as the rest of the suite.
const std::string consumer_cxxflags = STARTUP_SERVER_CONSUMER_CXXFLAGS;
const std::string consumer_ldflags = STARTUP_SERVER_CONSUMER_LDFLAGS;

void run_consumer(const std::string& path) {
  const run_result r = succeed({path});
  CHECK(r.out.find("consumer: echoed") != std::string::npos);
}

}  // namespace

TEST_CASE("install: cmake --install puts every file under the prefix it is given", "[install]") {
  if (!STARTUP_SERVER_INSTALL_DIRS_RELATIVE) {
    WARN("an install folder (CMAKE_INSTALL_*DIR) is absolute: the install tests are skipped");
    return;
  }
  temp_dir dir;
  const std::string prefix = install_into(dir);
  for (const auto& file : installed_files()) {
    INFO(prefix << "/" << file);
    CHECK(fs::is_regular_file(prefix + "/" + file));
  }
  const run_result version = succeed({prefix + "/" + install_dirs().bin + "/startup-server", "--version"});
  CHECK(version.out.rfind("startup-server " + project_version, 0) == 0);
  check_man_page(prefix + "/" + install_dirs().man + "/man1/startup-server.1.gz");

  // The pkg-config file names the prefix installed to, not the one configured.
  const auto pc = read_file(prefix + "/" + install_dirs().lib + "/pkgconfig/startup_server.pc");
  REQUIRE(pc);
  INFO(*pc);
  CHECK(pc->find("\nprefix=" + prefix + "\n") != std::string::npos);
  CHECK(pc->find("\nVersion: " + project_version + "\n") != std::string::npos);
  CHECK(pc->find("@") == std::string::npos);
}

TEST_CASE("install: a program built with find_package(startup_server) runs", "[install]") {
  if (!STARTUP_SERVER_INSTALL_DIRS_RELATIVE) {
    WARN("an install folder (CMAKE_INSTALL_*DIR) is absolute: the install tests are skipped");
    return;
  }
  temp_dir dir;
  const std::string prefix = install_into(dir);
  const std::string consumer_build = dir.file("consumer");
  const run_result configured = succeed({STARTUP_SERVER_CMAKE, "-S", source_dir + "/tests/consumer", "-B",
                                         consumer_build, "-G", STARTUP_SERVER_GENERATOR,
                                         "-DCMAKE_MAKE_PROGRAM=" STARTUP_SERVER_MAKE_PROGRAM,
                                         "-DCMAKE_CXX_COMPILER=" STARTUP_SERVER_CXX,
                                         "-DCMAKE_CXX_FLAGS=" + consumer_cxxflags,
                                         "-DCMAKE_EXE_LINKER_FLAGS=" + consumer_ldflags,
                                         "-DCMAKE_PREFIX_PATH=" + prefix,
                                         "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"});
  // The package found is the one just installed, at the project's version.
  CHECK(configured.out.find("startup_server " + project_version + " from " + prefix + "/") != std::string::npos);
  succeed({STARTUP_SERVER_CMAKE, "--build", consumer_build});
  run_consumer(consumer_build + "/consumer");
}

TEST_CASE("install: a program built with pkg-config --cflags --libs startup_server alone runs", "[install]") {
  if (!STARTUP_SERVER_INSTALL_DIRS_RELATIVE) {
    WARN("an install folder (CMAKE_INSTALL_*DIR) is absolute: the install tests are skipped");
    return;
  }
  if (!have("pkg-config")) {
    WARN("pkg-config is not installed (scripts/setup.sh installs it): the pkg-config test is skipped");
    return;
  }
  temp_dir dir;
  const std::string prefix = install_into(dir);
  const std::string pc_path = prefix + "/" + install_dirs().lib + "/pkgconfig";

  const run_result version = succeed({"env", "PKG_CONFIG_PATH=" + pc_path, "pkg-config", "--modversion", "startup_server"});
  CHECK(version.out == project_version + "\n");
  const run_result flags = succeed({"env", "PKG_CONFIG_PATH=" + pc_path, "pkg-config", "--cflags", "--libs", "startup_server"});
  INFO(flags.out);
  CHECK(flags.out.find("-I" + prefix + "/" + install_dirs().include) != std::string::npos);
  CHECK(flags.out.find("-L" + prefix + "/" + install_dirs().lib) != std::string::npos);

  // The line a user types, through a shell: the compiler, the source, and pkg-config's words.
  const std::string consumer = dir.file("consumer");
  succeed({"/bin/sh", "-c",
           STARTUP_SERVER_CXX " -std=c++20 " + consumer_cxxflags + " '" + source_dir + "/tests/consumer/main.cpp' -o '" +
               consumer + "' $(PKG_CONFIG_PATH='" + pc_path + "' pkg-config --cflags --libs startup_server) " +
               consumer_ldflags});
  run_consumer(consumer);
}

TEST_CASE("package: cpack -G DEB packs every installed file under /usr with the control fields Debian expects",
          "[package]") {
  if (!can_pack()) return;
  temp_dir dir;
  const std::string deb = pack_into(dir);

  const run_result contents = succeed({"dpkg-deb", "-c", deb});
  for (const auto& file : installed_files()) {
    INFO("./usr/" << file << " in\n" << contents.out);
    CHECK(contents.out.find(" ./usr/" + file + "\n") != std::string::npos);
  }

  const run_result control = succeed({"dpkg-deb", "-f", deb});
  INFO(control.out);
  const auto fields = control_fields(control.out);
  CHECK(field(fields, "Package") == "startup-server");
  CHECK(field(fields, "Version") == project_version);
  CHECK(field(fields, "Section") == "net");
  const run_result architecture = succeed({"dpkg", "--print-architecture"});
  CHECK(field(fields, "Architecture") + "\n" == architecture.out);
  // The synopsis line, then the long description.
  CHECK(field(fields, "Description").rfind("launch an ad-hoc TCP server from the shell\n", 0) == 0);
  CHECK(field(fields, "Description").find("comm:start-up-server") != std::string::npos);
  // What dpkg-shlibdeps finds the command linked against (as named on Debian 12): the C and
  // C++ runtimes, OpenSSL 3, and fmt, which is linked shared.
  const auto depends = package_names(field(fields, "Depends"));
  for (const std::string name : {"libc6", "libstdc++6", "libgcc-s1", "libssl3", "libfmt" STARTUP_SERVER_FMT_VERSION_MAJOR}) {
    INFO(name);
    CHECK(depends.count(name) == 1);
  }

  // Inside the package the pkg-config file names /usr, the prefix it installs to.
  succeed({"dpkg-deb", "-x", deb, dir.file("root")});
  const auto pc = read_file(dir.file("root") + "/usr/" + install_dirs().lib + "/pkgconfig/startup_server.pc");
  REQUIRE(pc);
  CHECK(pc->find("\nprefix=/usr\n") != std::string::npos);
  check_man_page(dir.file("root") + "/usr/" + install_dirs().man + "/man1/startup-server.1.gz");
}

TEST_CASE("package: dpkg -i installs the package into a private root and dpkg -r leaves none of its files",
          "[package]") {
  if (!can_pack()) return;
  temp_dir dir;
  const std::string deb = pack_into(dir);
  const std::string root = dir.file("root");
  for (const char* folder : {"info", "updates", "triggers"}) fs::create_directories(root + "/var/lib/dpkg/" + folder);
  REQUIRE(std::ofstream(root + "/var/lib/dpkg/status"));  // an empty database: nothing installed

  succeed(dpkg_in(root, {"-i", deb}));
  for (const auto& file : installed_files()) {
    INFO(root << "/usr/" << file);
    CHECK(fs::is_regular_file(root + "/usr/" + file));
  }
  const run_result version = succeed({root + "/usr/" + install_dirs().bin + "/startup-server", "--version"});
  CHECK(version.out.rfind("startup-server " + project_version, 0) == 0);
  const run_result status = succeed(dpkg_in(root, {"-s", "startup-server"}));
  CHECK(status.out.find("\nStatus: install ok installed\n") != std::string::npos);
  // What dpkg put in place, as it lists it: what removal must take away.
  const std::vector<std::string> listed = split_lines(succeed(dpkg_in(root, {"-L", "startup-server"})).out);
  CHECK(listed.size() > installed_files().size());

  // The package has no configuration files, so removal leaves nothing for a purge; the
  // folders go too, as the root held nothing else.
  succeed(dpkg_in(root, {"-r", "startup-server"}));
  for (const auto& path : listed) {
    if (path == "/.") continue;
    INFO(root << path);
    CHECK(!fs::exists(fs::symlink_status(root + path)));
  }
  const run_result gone = run_command(dpkg_in(root, {"-s", "startup-server"}), command_timeout);
  INFO(gone.out << gone.err);
  CHECK(gone.status != 0);
  CHECK(gone.err.find("package 'startup-server' is not installed") != std::string::npos);
}

TEST_CASE("install: the revision step gives no revision for a source tree that is not a git checkout",
          "[install][revision]") {
  temp_dir dir;
  const std::string tree = dir.file("startup-server-" + project_version);
  fs::create_directory(tree);
  CHECK(revision_for(tree, dir.path()).empty());

  // Unpacked inside another checkout, a tarball still has no revision: the checkout's commit
  // is not the tarball's.
  if (!have("git")) {
    WARN("git is not installed: the tarball-inside-a-checkout case is skipped");
    return;
  }
  succeed({"git", "-C", dir.path(), "init", "-q"});
  succeed({"git", "-C", dir.path(), "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c",
           "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "outer"});
  CHECK(revision_for(tree, dir.path()).empty());
}

TEST_CASE("install: the revision step gives the abbreviated commit of the project's git checkout",
          "[install][revision]") {
  if (!fs::exists(source_dir + "/.git")) {
    WARN(source_dir << " is not a git checkout: the revision test is skipped");
    return;
  }
  if (!have("git")) {
    WARN("git is not installed: the revision test is skipped");
    return;
  }
  temp_dir dir;
  const std::string revision = revision_for(source_dir, dir.path());
  CHECK(std::regex_match(revision, std::regex("[0-9a-f]{7,}(-dirty)?")));
  const run_result head = succeed({"git", "-C", source_dir, "rev-parse", "--short=7", "HEAD"});
  CHECK(revision.rfind(head.out.substr(0, head.out.find('\n')), 0) == 0);
}
