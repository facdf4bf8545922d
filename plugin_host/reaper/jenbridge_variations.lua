-- @noindex
-- jenbridge: variations as takes (docs/daw.md).
-- Renders the selection and asks for `variations` variations of it (/jb/vary, `strength`):
-- they arrive as takes of one new item on a new track (switch takes with T).
-- The work is in jenbridge_common.lua, which must sit next to this file.
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
dofile(dir .. "/jenbridge_common.lua").main("variations")
