mod idreader;
mod printer;
mod stm_codec;
mod stm_link;
