-- @noindex
-- jenbridge: generate into the time selection (docs/daw.md).
-- Asks the daemon for new music exactly as long as the selection (/jb/generate), at the
-- selection's tempo and meter, on a new track below the selected one.
-- The work is in jenbridge_common.lua, which must sit next to this file.
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
dofile(dir .. "/jenbridge_common.lua").main("generate")
