-- @noindex
-- jenbridge: inpaint the time selection (docs/daw.md).
-- Renders the selection plus `context` seconds either side, asks the daemon to regenerate
-- the selection (/jb/inpaint) and puts the result, trimmed to the selection, on a new track
-- below the selected one.
-- The work is in jenbridge_common.lua, which must sit next to this file.
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
dofile(dir .. "/jenbridge_common.lua").main("inpaint")
