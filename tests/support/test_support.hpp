// One include for the integration tests: processes, clients, /proc and JSON lines.
#pragma once

#include "support/json_line.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/procfs.hpp"
#include "support/strace.hpp"
