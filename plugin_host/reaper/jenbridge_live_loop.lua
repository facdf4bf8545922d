-- @noindex
-- jenbridge: start/stop live loop on the selection (docs/daw.md).
-- Toggle. Renders the selection (whole bars) and starts a live loop on the daemon's audio
-- output (/jb/loop/start: the selection is iteration 0, each next one continues or varies
-- the last); run it again to stop the loop (/jb/loop/stop).
-- The work is in jenbridge_common.lua, which must sit next to this file.
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
dofile(dir .. "/jenbridge_common.lua").main("loop")
