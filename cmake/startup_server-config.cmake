# find_package(startup_server): the installed library and what it links against.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(fmt 9)
include("${CMAKE_CURRENT_LIST_DIR}/startup_server-targets.cmake")
