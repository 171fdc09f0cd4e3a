# The files of web/ that the binary serves (read by web_assets.cmake and embed_web.cmake).
set(COGUMI_WEB_PATTERNS *.html *.js *.css *.svg)
