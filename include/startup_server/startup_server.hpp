// The umbrella header of the startup_server library.
#pragma once

#include "startup_server/client.hpp"
#include "startup_server/condition.hpp"
#include "startup_server/events.hpp"
#include "startup_server/options.hpp"
#include "startup_server/server.hpp"
