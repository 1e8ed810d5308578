# Writes the commit a build comes from into a generated source, at build time, and rewrites it
# only when the value changes, so a build with nothing new compiles nothing.
#
#   cmake -DSOURCE_DIR=<checkout> -DOUTPUT=<file.cpp> [-DGIT_EXECUTABLE=<git>] -P git_revision.cmake
#
# The revision is the abbreviated commit ("1a2b3c4"), with "-dirty" when tracked files differ
# from it; it is empty when SOURCE_DIR is not the top of a git checkout (a tarball, even one
# unpacked inside another checkout) or git is missing or refuses the checkout.
cmake_minimum_required(VERSION 3.25)

if(NOT GIT_EXECUTABLE)
  find_program(GIT_EXECUTABLE git)
endif()

set(revision "")
if(GIT_EXECUTABLE AND EXISTS "${SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short=7 HEAD
                  RESULT_VARIABLE failed OUTPUT_VARIABLE commit ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT failed AND commit MATCHES "^[0-9a-f]+$")
    # Untracked files (a build directory, an editor's backup) do not make the tree dirty.
    # --no-optional-locks: the build never takes the index lock from a git command run meanwhile.
    execute_process(COMMAND "${GIT_EXECUTABLE}" --no-optional-locks -C "${SOURCE_DIR}" status --porcelain --untracked-files=no
                    RESULT_VARIABLE failed OUTPUT_VARIABLE changes ERROR_QUIET)
    if(NOT failed)
      set(revision "${commit}")
      if(NOT changes STREQUAL "")
        string(APPEND revision "-dirty")
      endif()
    endif()
  endif()
endif()

set(content "// Generated at build time by cmake/git_revision.cmake: the commit this build comes from.
namespace startup_server::cli {
const char* git_revision() noexcept { return \"${revision}\"; }
}  // namespace startup_server::cli
")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUTPUT}" "${content}")
endif()
