"""The only code that knows Redis: keys, Lua scripts, repositories."""
