-- @noindex
-- jenbridge: continue from the time selection (docs/daw.md).
-- Renders the selection and asks the daemon to continue it (/jb/continue): the new audio
-- (as long as the selection, or `continue_seconds`) lands on a new track right after it.
-- The work is in jenbridge_common.lua, which must sit next to this file.
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
dofile(dir .. "/jenbridge_common.lua").main("continue")
